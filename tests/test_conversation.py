"""Conversations and conventions as pure functions over spans: no gRPC, no Trackio. The
end-to-end forms (real instrumentations over OTLP, read back through Trackio) are in
``test_conventions.py``; these pin the rules themselves, one case each."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest

from tests.conftest import AGENT_ROLES, load_fixture
from trackio_otel.translate import logs as log_records
from trackio_otel.translate import spans as span_records
from trackio_otel.translate.conventions import SpanView, view
from trackio_otel.translate.conventions import messages as msgs
from trackio_otel.translate.model import Log, Run, Span
from trackio_otel.translate.trace import assemble, conversation

RUN = Run("p", "r", "r")


def span_of(attrs: dict[str, Any], *, events: list | None = None, **kw: Any) -> Span:
    fields: dict[str, Any] = dict(
        run=RUN,
        resource_id="res",
        trace_id="a" * 32,
        span_id="1" * 16,
        parent_span_id=None,
        name="s",
        kind=3,
        start_ns=1,
        end_ns=2,
        status_code=0,
        status_message="",
        attributes=attrs,
        events=events or [],
        links=[],
        scope_name="scope",
        scope_version="1",
    )
    fields.update(kw)
    return Span(**fields)


def log_of(event: str, body: Any, time_ns: int, span_id: str = "1" * 16) -> Log:
    return Log(
        "u" + str(time_ns),
        RUN,
        "res",
        time_ns,
        0,
        9,
        "",
        event,
        body,
        {},
        "a" * 32,
        span_id,
        "",
        "",
    )


def turn(history: list[dict], answer: dict | None) -> SpanView:
    v = SpanView(span_of({}), kind="generation", messages_in=history, message_out=answer)
    return v


SYSTEM = {"role": "system", "content": "be brief"}
USER = {"role": "user", "content": "weather?"}
CALL = {"role": "assistant", "content": None, "tool_calls": [msgs.tool_call("c1", "w", {})]}
RESULT = {"role": "tool", "tool_call_id": "c1", "content": "12C"}
ANSWER = {"role": "assistant", "content": "12C in Paris", "finish_reason": "stop"}


# --- conversation: joining generations --------------------------------------------------------
def test_an_agent_loop_is_the_last_history_plus_its_answer():
    chat = conversation([turn([SYSTEM, USER], CALL), turn([SYSTEM, USER, CALL, RESULT], ANSWER)])
    assert [m["role"] for m in chat] == AGENT_ROLES
    assert "finish_reason" not in chat[-1]  # the answer is shown as a message, not a choice


def test_diverging_histories_are_appended_without_repeating_messages():
    side = {"role": "user", "content": "and tomorrow?"}
    chat = conversation([turn([SYSTEM, USER], CALL), turn([SYSTEM, side], ANSWER)])
    assert chat == [SYSTEM, USER, CALL, side, {"role": "assistant", "content": "12C in Paris"}]


def test_without_generations_the_first_span_with_messages_is_the_chat():
    agent = SpanView(span_of({}), kind="span", messages_in=[USER], message_out=None)
    later = SpanView(span_of({}), kind="span", messages_in=[SYSTEM], message_out=None)
    assert conversation([SpanView(span_of({})), agent, later]) == [USER]
    assert conversation([]) == []


def test_message_identity_compares_text_role_and_tool_fields():
    assert msgs.key(dict(USER)) == msgs.key(USER)
    assert msgs.key({**USER, "role": "assistant"}) != msgs.key(USER)
    assert msgs.key({**RESULT, "tool_call_id": "c2"}) != msgs.key(RESULT)


# --- message shapes -------------------------------------------------------------------------
def test_otel_parts_become_openai_messages_with_tool_results_on_their_own():
    parts = [
        {"role": "model", "parts": [{"type": "text", "content": "hi"}]},
        {
            "role": "user",
            "parts": [
                {"type": "tool_call_response", "id": "c1", "response": {"t": 12}},
                {"type": "blob", "mime_type": "image/png", "content": "AAAA", "modality": "image"},
            ],
        },
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c2", "name": "w"}]},
    ]
    assert msgs.from_parts(parts) == [
        {"role": "assistant", "content": "hi"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"t": 12}'},
        {"role": "assistant", "content": None, "tool_calls": [msgs.tool_call("c2", "w", None)]},
    ]


def test_unflatten_orders_by_index_not_by_arrival():
    attrs = {
        "llm.input_messages.10.message.role": "user",
        "llm.input_messages.2.message.role": "system",
        "llm.input_messages.2.message.contents.0.message_content.text": "x",
        "llm.input_messages.note": "not indexed: ignored",
    }
    assert msgs.unflatten(attrs, "llm.input_messages.") == [
        {"message": {"role": "system", "contents": [{"message_content": {"text": "x"}}]}},
        {"message": {"role": "user"}},
    ]


# --- conventions: which family, and where content is read from -----------------------------
@pytest.mark.parametrize(
    ("attrs", "convention", "kind"),
    [
        (
            {"openinference.span.kind": "LLM", "gen_ai.provider.name": "o"},
            "openinference",
            "generation",
        ),
        (
            {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "o"},
            "otel_genai",
            "generation",
        ),
        ({"gen_ai.operation.name": "execute_tool"}, "otel_genai", "tool"),
        (
            {"gen_ai.system": "openai", "gen_ai.completion.0.content": "hi"},
            "openllmetry",
            "generation",
        ),
        (
            {"gen_ai.system": "openai", "gen_ai.operation.name": "chat"},
            "otel_genai_legacy",
            "generation",
        ),
        ({"mcp.method.name": "tools/call"}, "otel_genai_legacy", "tool"),
        ({"traceloop.span.kind": "tool"}, "traceloop", "tool"),
        ({"http.method": "GET"}, None, "span"),
    ],
)
def test_the_first_matching_family_fills_the_span(attrs, convention, kind):
    v = view(span_of(attrs), [])
    assert (v.convention, v.kind) == (convention, kind)
    assert v.metadata.get("convention") == convention
    assert v.metadata["otel_span_id"] == "1" * 16


def test_genai_content_prefers_attributes_then_the_details_record_then_events():
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "o",
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "attr"}]}]
        ),
    }
    details = log_of("gen_ai.client.inference.operation.details", None, 5)
    details.attributes = {
        "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "log"}]}]
    }
    legacy = log_of("gen_ai.user.message", {"content": "event"}, 6)
    assert view(span_of(attrs), [details, legacy]).messages_in[0]["content"] == "attr"
    bare = {k: v for k, v in attrs.items() if k != "gen_ai.input.messages"}
    assert view(span_of(bare), [legacy, details]).messages_in[0]["content"] == "log"
    assert view(span_of(bare), [legacy]).messages_in[0]["content"] == "event"


def test_legacy_events_are_ordered_by_time_and_only_the_first_choice_answers():
    events = [
        log_of(
            "gen_ai.choice", {"index": 0, "message": {"content": "yes"}, "finish_reason": "stop"}, 9
        ),
        log_of("gen_ai.choice", {"index": 1, "message": {"content": "other"}}, 10),
        log_of("gen_ai.user.message", {"content": "second"}, 8),
        log_of("gen_ai.system.message", {"content": "first"}, 7),
    ]
    v = view(span_of({"gen_ai.operation.name": "chat", "gen_ai.system": "openai"}), events)
    assert [m["content"] for m in v.messages_in] == ["first", "second"]
    assert v.message_out == {"role": "assistant", "content": "yes", "finish_reason": "stop"}


def test_span_events_are_the_last_place_content_is_read_from():
    events = [
        {"name": "gen_ai.content.prompt", "attributes": {"gen_ai.prompt": json.dumps([USER])}},
        {
            "name": "gen_ai.content.completion",
            "attributes": {"gen_ai.completion": json.dumps([ANSWER])},
        },
    ]
    v = view(span_of({"gen_ai.operation.name": "chat", "gen_ai.system": "o"}, events=events), [])
    assert (v.messages_in, v.message_out) == ([USER], ANSWER)


def test_openinference_messages_map_roles_images_reasoning_and_calls():
    p = "llm.output_messages.0.message."
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.input_messages.0.message.role": "function",
        "llm.input_messages.0.message.content": "__REDACTED__",
        p + "role": "assistant",
        p + "contents.0.message_content.type": "reasoning",
        p + "contents.0.message_content.text": "think",
        p + "contents.1.message_content.type": "image",
        p + "contents.1.message_content.image.image.url": "https://x/i.png",
        p + "tool_calls.0.tool_call.id": "c1",
        p + "tool_calls.0.tool_call.function.name": "w",
        p + "tool_calls.0.tool_call.function.arguments": "{}",
        "llm.finish_reason": "tool_calls",
    }
    v = view(span_of(attrs), [])
    assert v.messages_in == [{"role": "tool", "content": None}]  # redacted is not captured
    assert v.message_out == {
        "role": "assistant",
        "content": [{"type": "image_url", "image_url": {"url": "https://x/i.png"}}],
        "tool_calls": [msgs.tool_call("c1", "w", "{}")],
        "reasoning_content": "think",
        "finish_reason": "tool_calls",
    }


def test_openllmetry_keeps_a_multimodal_prompt_as_content_items():
    items = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "u"}},
    ]
    attrs = {
        "llm.request.type": "chat",
        "gen_ai.system": "openai",
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": json.dumps(items),
        "gen_ai.completion.0.content": "a cat",
        "gen_ai.completion.0.finish_reason": "stop",
    }
    v = view(span_of(attrs), [])
    assert v.messages_in == [{"role": "user", "content": items}]
    assert v.message_out == {"role": "assistant", "content": "a cat", "finish_reason": "stop"}


def test_an_error_reads_the_status_then_the_exception_event_then_the_class():
    exception = {
        "name": "exception",
        "attributes": {"exception.type": "TimeoutError", "exception.message": "slow"},
    }
    failed = view(span_of({}, status_code=2, events=[exception]), [])
    assert (failed.status, failed.error) == ("error", "TimeoutError: slow")
    typed = view(span_of({"error.type": "<class 'openai.InternalServerError'>"}), [])
    assert (typed.status, typed.error) == ("error", "InternalServerError")
    stated = view(span_of({}, status_code=2, status_message="boom", events=[exception]), [])
    assert stated.error == "boom"


# --- the recorded fixtures, translated in process ------------------------------------------
@pytest.mark.parametrize(
    "fixture", ["new_span_only", "legacy_content_true", "openinference", "openllmetry"]
)
def test_each_recorded_agent_loop_is_one_conversation(fixture):
    """The agent trace joins its two calls into one chat; the standalone call keeps its own."""
    traces, logs = load_fixture(fixture, "p")
    records = span_records.from_request(traces)
    events = log_records.from_request(logs).logs
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for s in records.spans:
        by_trace[s.trace_id].append(s)
    chats = [
        (a.key, [m["role"] for m in a.messages])
        for a in (
            assemble(spans, [e for e in events if e.trace_id == tid])
            for tid, spans in by_trace.items()
        )
    ]
    assert ("invoke_agent WeatherBot", AGENT_ROLES) in chats
    assert [roles for _, roles in chats].count(["user", "assistant", "tool", "assistant"]) == 1
