"""Token usage, read once for every convention (``conventions.usage``): pure, no gRPC, no
Trackio. The conventions differ only in their attribute names; counting, totals and the
counted-or-aggregate decision are shared."""

from __future__ import annotations

from typing import Any

import pytest

from trackio_otel.translate.conventions import SpanView, usage, view
from trackio_otel.translate.model import Run, Span

RUN = Run("p", "r", "r")


def span_of(attrs: dict[str, Any], span_id: str = "1" * 16, parent: str | None = None) -> Span:
    return Span(RUN, "res", "a" * 32, span_id, parent, "s", 1, 1, 2, 0, "", attrs, [], [], "", "")


@pytest.mark.parametrize(
    "attrs",
    [
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 4,
            "gen_ai.usage.cache_read.input_tokens": 3,
            "gen_ai.usage.reasoning_tokens": 2,
            "gen_ai.usage.cost": 0.5,
        },
        {
            "openinference.span.kind": "LLM",
            "llm.token_count.prompt": 10,
            "llm.token_count.completion": 4,
            "llm.token_count.prompt_details.cache_read": 3,
            "llm.token_count.completion_details.reasoning": 2,
            "llm.cost.total": 0.5,
        },
        {
            "llm.request.type": "chat",
            "gen_ai.system": "openai",
            "gen_ai.usage.prompt_tokens": 10,
            "gen_ai.usage.completion_tokens": 4,
            "gen_ai.usage.cache_read_input_tokens": 3,
            "llm.usage.reasoning_tokens": 2,
        },
    ],
    ids=["genai", "openinference", "openllmetry"],
)
def test_every_convention_reads_usage_into_the_same_keys(attrs):
    v = view(span_of(attrs), [])
    assert v.kind == "generation"
    assert v.usage == {
        "input_tokens": 10,
        "output_tokens": 4,
        "total_tokens": 14,
        "cache_read_input_tokens": 3,
        "reasoning_tokens": 2,
    }
    assert v.cost_usd == (None if "llm.request.type" in attrs else 0.5)
    assert "aggregate_usage" not in v.metadata


def test_agent_usage_is_kept_as_aggregate_never_counted():
    v = view(
        span_of(
            {
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 28,
            }
        ),
        [],
    )
    assert v.usage is None and v.cost_usd is None
    assert v.metadata["aggregate_usage"]["total_tokens"] == 128
    assert "aggregate_cost_usd" not in v.metadata  # nothing reported, nothing written


def test_stated_total_wins_and_openllmetry_prefers_its_own():
    names = usage.Names(("in",), ("out",), ("total", "other_total"))
    assert usage.read({"in": 1, "out": 2, "other_total": 9}, names)["total_tokens"] == 9
    assert usage.read({"in": 1, "out": 2, "total": 0}, names)["total_tokens"] == 3
    v = view(
        span_of(
            {
                "llm.request.type": "chat",
                "gen_ai.system": "openai",
                "gen_ai.usage.input_tokens": 1,
                "gen_ai.usage.output_tokens": 2,
                "gen_ai.usage.total_tokens": 5,
                "llm.usage.total_tokens": 7,
            }
        ),
        [],
    )
    assert v.usage["total_tokens"] == 7


def test_counts_that_are_not_numbers_are_absent_not_errors():
    names = usage.Names(("in",), ("out",), ("total",))
    assert usage.read({"in": "abc", "out": True}, names) is None
    assert usage.read({"in": float("inf"), "out": "12"}, names) == {
        "input_tokens": 0,
        "output_tokens": 12,
        "total_tokens": 12,
    }
    assert usage.read({"in": 3.0, "out": None, "total": float("nan")}, names) == {
        "input_tokens": 3,
        "output_tokens": 0,
        "total_tokens": 3,
    }


def test_demote_moves_usage_and_cost_to_aggregates():
    v = SpanView(span_of({}), usage={"input_tokens": 1}, cost_usd=0.25)
    usage.demote(v)
    assert (v.usage, v.cost_usd) == (None, None)
    assert v.metadata == {"aggregate_usage": {"input_tokens": 1}, "aggregate_cost_usd": 0.25}
    bare = SpanView(span_of({}))
    usage.demote(bare)
    assert bare.metadata == {}
