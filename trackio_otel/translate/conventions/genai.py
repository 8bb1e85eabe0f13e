"""OTel GenAI semantic conventions, every generation of them still in use.

Content can live in four places (reference §1.4), tried in this order:
(c) span attributes ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (≥1.37);
(c′) ``gen_ai.client.inference.operation.details`` events on the span, as log records or as
    span events (Strands writes one at the call's start with the input, one at its end);
(b) per-message events ``gen_ai.user.message`` … ``gen_ai.choice`` (1.28–1.36), as log
    records with structured bodies, or as span events whose attributes hold JSON (Strands,
    with Bedrock-style ``text`` / ``toolUse`` / ``toolResult`` content blocks);
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
PYDANTIC_AI_MESSAGES = "pydantic_ai.all_messages"
"""pydantic-ai's agent span holds the run's messages here, also when its model call failed
(whose own span then holds none)."""
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
    op = pdata.text(a.get(semconv.GEN_AI_OPERATION_NAME))
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
        args, result = _tool_io(span)
        v.input = (
            pdata.parse_json(args)
            if args is not None
            else {"tool": a.get(semconv.GEN_AI_TOOL_NAME)}
        )
        v.output = msgs.block_text(pdata.parse_json(result)) if result is not None else None
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
    if PYDANTIC_AI_MESSAGES in a:  # its agent span: the run's whole conversation, as parts
        return _from_latest(
            {
                semconv.GEN_AI_INPUT_MESSAGES: a[PYDANTIC_AI_MESSAGES],
                semconv.GEN_AI_SYSTEM_INSTRUCTIONS: a.get(semconv.GEN_AI_SYSTEM_INSTRUCTIONS),
            }
        )
    details: dict[str, Any] = {}
    for log in logs:
        if log.event_name == semconv.EVENT_INFERENCE_DETAILS:
            details.update(log.attributes)
    for event in span.events:
        if event["name"] == semconv.EVENT_INFERENCE_DETAILS:
            details.update(event["attributes"])
    if details:
        return _from_latest(details)
    events = [
        (log.event_name, log.time_ns or log.observed_ns, log.body)
        for log in logs
        if _is_message_event(log.event_name)
    ] or [
        (e["name"], e["time_unix_nano"], _event_body(e["attributes"]))
        for e in span.events
        if _is_message_event(e["name"])
    ]
    if events:
        return _from_legacy_events(events)
    return _from_span_events(span)


def _is_message_event(name: str) -> bool:
    return name in semconv.LEGACY_MESSAGE_EVENTS or name == semconv.EVENT_CHOICE


def _event_body(attributes: dict[str, Any]) -> dict[str, Any]:
    """A span event's attributes as the log body it stands for: span event attributes
    cannot nest, so ``content`` and ``message`` arrive JSON-encoded."""
    body = dict(attributes)
    for name in ("content", "message"):
        if name in body:
            body[name] = pdata.parse_json(body[name])
    return body


def _tool_io(span: Span) -> tuple[Any, Any]:
    """A tool span's (arguments, result): the ``gen_ai.tool.call.*`` attributes, else the
    span events that carried them before 1.37 (Strands: ``gen_ai.tool.message`` holds the
    arguments, ``gen_ai.choice`` the result)."""
    a = span.attributes
    args, result = a.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS), a.get(semconv.GEN_AI_TOOL_CALL_RESULT)
    for event in span.events:
        if args is None and event["name"] == "gen_ai.tool.message":
            args = event["attributes"].get("content")
        elif result is None and event["name"] == semconv.EVENT_CHOICE:
            result = event["attributes"].get("message")
    return args, result


def _from_latest(a: dict[str, Any]) -> tuple[list[msgs.Message], list[msgs.Message]]:
    history = msgs.from_parts(pdata.parse_json(a.get(semconv.GEN_AI_INPUT_MESSAGES)))
    system = msgs.system_message(pdata.parse_json(a.get(semconv.GEN_AI_SYSTEM_INSTRUCTIONS)))
    if system and not (history and history[0].get("role") == "system"):
        history.insert(0, system)
    return history, msgs.from_parts(pdata.parse_json(a.get(semconv.GEN_AI_OUTPUT_MESSAGES)))


def _from_legacy_events(
    events: list[tuple[str, int, Any]],
) -> tuple[list[msgs.Message], list[msgs.Message]]:
    """(event name, time, body) per message event, in time order, → (history, outputs)."""
    history: list[msgs.Message] = []
    outputs: list[msgs.Message] = []
    ordered = sorted(enumerate(events), key=lambda ie: (ie[1][1], ie[0]))
    for _, (name, _time, raw) in ordered:
        body = raw if isinstance(raw, dict) else {}
        if name == semconv.EVENT_CHOICE:
            if body.get("index", 0) != 0 and outputs:
                continue
            message = body.get("message")
            if msgs.is_blocks(message):
                outputs += msgs.from_blocks("assistant", message)
                if outputs and "finish_reason" in body:
                    outputs[-1]["finish_reason"] = body["finish_reason"]
                continue
            if isinstance(message, str):  # Strands' agent span: the final text alone
                message = {"content": message}
            message = message if isinstance(message, dict) else {}
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
        role = body.get("role") or semconv.LEGACY_MESSAGE_EVENTS[name]
        if msgs.is_blocks(body.get("content")):
            history += msgs.from_blocks(role, body["content"])
            continue
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
