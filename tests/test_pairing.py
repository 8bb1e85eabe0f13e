"""The trace-level steps on span views, case by case (the frameworks that need each one run
for real in test_frameworks.py)."""

from __future__ import annotations

import json

from tests.test_conversation import span_of
from trackio_otel.translate.conventions import SpanView, pairing
from trackio_otel.translate.conventions import messages as msgs
from trackio_otel.translate.model import Span


def span(name: str, span_id: str, **attributes) -> Span:
    return span_of(attributes, name=name, span_id=span_id)


def generation(*calls: tuple[str, str, dict]) -> SpanView:
    out = {"role": "assistant", "content": None}
    out["tool_calls"] = [msgs.tool_call(i, n, a) for i, n, a in calls]
    v = SpanView(span("chat", "g1"), kind="generation")
    v.messages_in, v.message_out = [{"role": "user", "content": "weather?"}], out
    return v


def tool(span_id: str, name: str, tool_input=None, output=None, **attributes) -> SpanView:
    v = SpanView(span(name, span_id, **attributes), kind="tool")
    v.input, v.output = tool_input, output
    return v


def test_call_id_from_its_output():
    gen = generation(("call_a", "get_weather", {"location": "Paris"}))
    t = tool("s1", "get_weather", "Paris", {"data": {"tool_call_id": "call_a", "content": "x"}})
    pairing.settle([gen, t])
    assert t.tool_call_id == "call_a"


def test_an_id_the_output_merely_quotes_is_not_taken():
    gen = generation(("call_a", "get_weather", {"location": "Paris"}))
    t = tool("s1", "get_weather", {"location": "Paris"}, {"tool_call_id": "call_other"})
    pairing.settle([gen, t])
    assert t.tool_call_id == "call_a"  # by name and arguments instead


def test_by_name_and_arguments_then_order():
    gen = generation(
        ("call_a", "get_weather", {"location": "Paris"}),
        ("call_b", "get_weather", {"location": "Rome"}),
        ("call_c", "get_time", {}),
    )
    rome = tool("s1", "execute_tool get_weather", json.dumps({"location": "Rome"}))
    paris = tool("s2", "x", {"location": "Paris"}, **{"tool.name": "get_weather"})
    clock = tool("s3", "get_time", None)  # no arguments recorded: by order
    own = tool("s4", "get_weather", None, **{"gen_ai.tool.call.id": "call_own"})
    own.tool_call_id = "call_own"
    pairing.settle([gen, rome, paris, clock, own])
    assert [rome.tool_call_id, paris.tool_call_id, clock.tool_call_id] == [
        "call_b",
        "call_a",
        "call_c",
    ]
    assert own.tool_call_id == "call_own"


def test_a_call_is_claimed_once():
    gen = generation(("call_a", "get_weather", {"location": "Paris"}))
    first, second = tool("s1", "get_weather", "Paris"), tool("s2", "get_weather", "Paris")
    pairing.settle([gen, first, second])
    assert (first.tool_call_id, second.tool_call_id) == ("call_a", None)


def test_messages_that_say_nothing_are_dropped():
    v = SpanView(span("chat", "g1"), kind="generation")
    v.messages_in = [{"role": "user", "content": None}, {"role": "assistant", "content": ""}]
    v.message_out = {"role": "assistant", "content": []}
    pairing.settle([v])
    assert v.messages_in == [{"role": "user", "content": None}]  # withheld, not empty
    assert v.message_out is None


def test_a_silent_llm_span_beside_the_call_is_not_a_second_generation():
    helper = SpanView(span("OpenAI._prepare_chat_with_tools", "h1"), kind="generation", model="m")
    call = SpanView(span("OpenAI.achat", "c1"), kind="generation", model="m")
    call.usage = {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}
    pairing.settle([helper, call])
    assert (helper.kind, call.kind) == ("span", "generation")


def test_an_uncaptured_call_with_a_response_stays_a_generation():
    """No usage and no content captured, but a finish reason: it did talk to the model."""
    quiet = SpanView(
        span("chat", "q1", **{"gen_ai.response.finish_reasons": ("stop",)}), kind="generation"
    )
    call = SpanView(span("chat", "c1"), kind="generation", model="m")
    call.usage = {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}
    other_model = SpanView(span("chat", "o1"), kind="generation", model="other")
    pairing.settle([quiet, call])
    pairing.settle([other_model, call])
    assert [v.kind for v in (quiet, call, other_model)] == ["generation"] * 3
