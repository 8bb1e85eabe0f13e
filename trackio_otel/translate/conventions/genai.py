"""OTel GenAI semantic conventions, every generation of them still in use.

Content can live in four places (reference §1.4), tried in this order:
(c) span attributes ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (≥1.37);
(c′) the ``gen_ai.client.inference.operation.details`` log record on the span;
(b) per-message log events ``gen_ai.user.message`` … ``gen_ai.choice`` (1.28–1.36);
(a) span events ``gen_ai.content.prompt`` / ``gen_ai.content.completion`` (≤1.27).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from trackio_otel import semconv
from trackio_otel.translate import pdata
from trackio_otel.translate.conventions import messages as msgs
from trackio_otel.translate.conventions import usage
from trackio_otel.translate.model import Log, Span

if TYPE_CHECKING:
    from trackio_otel.translate.conventions import SpanView

NAME = "otel_genai"
GENERATION_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "response"})
USAGE_SPANS = GENERATION_OPERATIONS | {"embeddings"}
CONTENT_ATTRIBUTES = frozenset(
    {
        semconv.GEN_AI_INPUT_MESSAGES,
        semconv.GEN_AI_OUTPUT_MESSAGES,
        semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
        "gen_ai.tool.definitions",
        semconv.GEN_AI_TOOL_CALL_ARGUMENTS,
        semconv.GEN_AI_TOOL_CALL_RESULT,
        "gen_ai.prompt",
        "gen_ai.completion",
    }
)
_DETECT = (
    semconv.GEN_AI_PROVIDER_NAME,
    semconv.GEN_AI_INPUT_MESSAGES,
    semconv.GEN_AI_OUTPUT_MESSAGES,
    semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
)
_FLAT_CONTENT_PREFIXES = ("gen_ai.prompt.", "gen_ai.completion.")
_FLAT_CONTENT = re.compile(r"^gen_ai\.(prompt|completion)\.\d+\.")
_METADATA_PREFIXES = (
    "gen_ai.",
    "server.",
    "error.",
    "openai.",
    "mcp.",
    "session.",
    "user.",
    "traceloop.association.properties.",
)
USAGE = usage.Names(
    input_tokens=(semconv.GEN_AI_USAGE_INPUT_TOKENS, "gen_ai.usage.prompt_tokens"),
    output_tokens=(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, "gen_ai.usage.completion_tokens"),
    total_tokens=("gen_ai.usage.total_tokens",),
    details={
        "cache_read_input_tokens": (
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",
        ),
        "cache_creation_input_tokens": (
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_write.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
        ),
        "reasoning_tokens": (
            "gen_ai.usage.reasoning.output_tokens",
            "gen_ai.usage.reasoning_tokens",
        ),
    },
    cost=semconv.GEN_AI_USAGE_COST,
)
"""``gen_ai.usage.*`` (and the pre-1.27 prompt/completion names) → Trackio's usage keys."""
_SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")


def detect(attrs: dict[str, Any]) -> bool:
    """The ≥1.37 form (OpenLLMetry ≥0.55, OpenLIT, util-genai). An operation without the
    pre-1.37 ``gen_ai.system`` (a manual ``execute_tool`` span) is this form too; spans that
    do carry ``gen_ai.system`` fall through to OpenLLMetry's flattened form, then
    ``genai_legacy``."""
    return not attrs.keys().isdisjoint(_DETECT) or (
        semconv.GEN_AI_OPERATION_NAME in attrs and semconv.GEN_AI_SYSTEM not in attrs
    )


def fill(v: SpanView, span: Span, logs: list[Log]) -> None:
    a = span.attributes
    op = a.get(semconv.GEN_AI_OPERATION_NAME)
    if op is None and a.get("mcp.method.name") == "tools/call":
        op = "execute_tool"
    v.kind = (
        "generation" if op in GENERATION_OPERATIONS else "tool" if op == "execute_tool" else "span"
    )
    v.model = a.get(semconv.GEN_AI_RESPONSE_MODEL) or a.get(semconv.GEN_AI_REQUEST_MODEL)
    v.metadata = metadata(span)
    usage.record(v, a, USAGE, counted=op in USAGE_SPANS)

    if v.kind == "tool":
        v.tool_call_id = a.get(semconv.GEN_AI_TOOL_CALL_ID)
        args = a.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS)
        v.input = (
            pdata.parse_json(args)
            if args is not None
            else {"tool": a.get(semconv.GEN_AI_TOOL_NAME)}
        )
        result = a.get(semconv.GEN_AI_TOOL_CALL_RESULT)
        v.output = pdata.parse_json(result) if result is not None else None
        return

    history, outputs = content(span, logs)
    v.input = history or None
    v.output = (outputs[0] if len(outputs) == 1 else outputs) if outputs else None
    if v.kind == "generation":
        v.messages_in, v.message_out = history, (outputs[0] if outputs else None)
        if v.output is None:
            v.output = {"finish_reasons": a.get(semconv.GEN_AI_RESPONSE_FINISH_REASONS, [])}
    elif history or outputs:  # an agent span that records the conversation it ran
        v.messages_in, v.message_out = history, (outputs[0] if outputs else None)


def is_flat_content(key: str) -> bool:
    """``gen_ai.prompt.<i>.*`` / ``gen_ai.completion.<i>.*`` (OpenLLMetry's flattened
    messages). The cheap prefix test goes first: the regex only sees keys that could match."""
    return key.startswith(_FLAT_CONTENT_PREFIXES) and bool(_FLAT_CONTENT.match(key))


def _is_metadata(key: str) -> bool:
    return (
        key.startswith(_METADATA_PREFIXES)
        and key not in CONTENT_ATTRIBUTES
        and not is_flat_content(key)
    )


_METADATA = pdata.KeyFilter(_is_metadata)


def metadata(span: Span) -> dict[str, Any]:
    """Every non-content ``gen_ai.*`` attribute, plus where the span came from."""
    meta = _METADATA.pick(span.attributes)
    meta["otel_kind"] = _SPAN_KINDS[span.kind] if 0 <= span.kind < len(_SPAN_KINDS) else span.kind
    meta["scope"] = span.scope_name
    return meta


def content(span: Span, logs: list[Log]) -> tuple[list[msgs.Message], list[msgs.Message]]:
    """(input history, output messages) in OpenAI shape, from wherever they were captured."""
    a = span.attributes
    if semconv.GEN_AI_INPUT_MESSAGES in a or semconv.GEN_AI_OUTPUT_MESSAGES in a:
        return _from_latest(a)
    for log in logs:
        if log.event_name == semconv.EVENT_INFERENCE_DETAILS:
            return _from_latest(log.attributes)
    events = [
        log
        for log in logs
        if log.event_name in semconv.LEGACY_MESSAGE_EVENTS or log.event_name == semconv.EVENT_CHOICE
    ]
    if events:
        return _from_legacy_events(events)
    return _from_span_events(span)


def _from_latest(a: dict[str, Any]) -> tuple[list[msgs.Message], list[msgs.Message]]:
    history = msgs.from_parts(pdata.parse_json(a.get(semconv.GEN_AI_INPUT_MESSAGES)))
    system = msgs.system_message(pdata.parse_json(a.get(semconv.GEN_AI_SYSTEM_INSTRUCTIONS)))
    if system and not (history and history[0].get("role") == "system"):
        history.insert(0, system)
    return history, msgs.from_parts(pdata.parse_json(a.get(semconv.GEN_AI_OUTPUT_MESSAGES)))


def _from_legacy_events(events: list[Log]) -> tuple[list[msgs.Message], list[msgs.Message]]:
    history: list[msgs.Message] = []
    outputs: list[msgs.Message] = []
    ordered = sorted(enumerate(events), key=lambda ie: (ie[1].time_ns or ie[1].observed_ns, ie[0]))
    for _, log in ordered:
        body = log.body if isinstance(log.body, dict) else {}
        if log.event_name == semconv.EVENT_CHOICE:
            if body.get("index", 0) != 0 and outputs:
                continue
            message = body.get("message") if isinstance(body.get("message"), dict) else {}
            out: msgs.Message = {
                "role": message.get("role", "assistant"),
                "content": message.get("content"),
            }
            calls = message.get("tool_calls") or body.get("tool_calls")
            if calls:
                out["tool_calls"] = calls
            if "finish_reason" in body:
                out["finish_reason"] = body["finish_reason"]
            outputs.append(out)
            continue
        role = body.get("role") or semconv.LEGACY_MESSAGE_EVENTS[log.event_name]
        msg: msgs.Message = {"role": role, "content": msgs.content_text(body.get("content"))}
        if body.get("tool_calls"):
            msg["tool_calls"] = body["tool_calls"]
        if role == "tool":
            msg["tool_call_id"] = body.get("id")
        if msg["content"] is not None or "tool_calls" in msg:
            history.append(msg)
    return history, outputs


def _from_span_events(span: Span) -> tuple[list[msgs.Message], list[msgs.Message]]:
    history: list[msgs.Message] = []
    outputs: list[msgs.Message] = []
    for event in span.events:
        if event["name"] == "gen_ai.content.prompt":
            history = msgs.from_openai(pdata.parse_json(event["attributes"].get("gen_ai.prompt")))
        elif event["name"] == "gen_ai.content.completion":
            outputs = msgs.from_openai(
                pdata.parse_json(event["attributes"].get("gen_ai.completion"))
            )
    return history, outputs
