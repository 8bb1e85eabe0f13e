"""``run.log_trace(trackio.Trace(...))``: a Trace payload re-expressed as OTel spans.

A root span carries the step, key, metadata and the whole conversation; each Trace span
becomes a child span in the GenAI convention (generations as ``chat``, tools as
``execute_tool`` whose call id is the Trace span id), so the collector's assembler gives
back the same messages, execution tree and tool pairing.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from trackio_otel import semconv
from trackio_otel.sdk import genai

if TYPE_CHECKING:
    from trackio_otel.sdk.run import Run

METADATA_PREFIX = "trackio.trace.metadata."
_METADATA_ATTRIBUTES = {"session_id": semconv.GEN_AI_CONVERSATION_ID, "user_id": "user.id"}


def emit_trace(run: Run, trace_obj: Any, step: int, key: str | None) -> None:
    if isinstance(trace_obj, dict):
        messages = trace_obj.get("messages") or []
        metadata = trace_obj.get("metadata") or {}
        spans = trace_obj.get("spans") or []
    else:
        messages, metadata, spans = trace_obj.messages, trace_obj.metadata, trace_obj.spans
    now = time.time_ns()
    starts = [_ns(s.get("start_time")) for s in spans]
    ends = [_ns(s.get("end_time")) or _end(s, st) for s, st in zip(spans, starts, strict=True)]
    start = min((t for t in starts if t), default=now)
    end = max((t for t in ends if t), default=start)

    attrs: dict[str, Any] = {**run.span_attributes(), semconv.STEP: step}
    attrs[semconv.TRACE_KEY] = key or "trace"
    if messages:
        attrs[semconv.GEN_AI_INPUT_MESSAGES] = genai.dumps_messages(messages)
    for name, value in metadata.items():
        if name.startswith("rollout."):
            attribute = f"trackio.{name}"
        else:
            attribute = _METADATA_ATTRIBUTES.get(name, METADATA_PREFIX + name)
        attrs[attribute] = _attribute(value)
    tracer = run.tracer()
    root = tracer.start_span(
        key or "trace", context=otel_context.Context(), attributes=attrs, start_time=start
    )
    created: dict[Any, trace.Span] = {}
    pending = list(zip(spans, starts, ends, strict=True))
    while pending:  # parents before children; unknown parents hang off the root
        ready = [
            p for p in pending if p[0].get("parent_id") in created or not _has_parent(p, spans)
        ]
        for item in ready or pending:
            s, st, en = item
            parent = created.get(s.get("parent_id"), root)
            span = tracer.start_span(
                str(s.get("name") or s.get("kind") or "span"),
                context=trace.set_span_in_context(parent),
                attributes={**run.span_attributes(), **_span_attributes(s)},
                start_time=st or start,
            )
            if s.get("status") == "error" or s.get("error"):
                span.set_status(Status(StatusCode.ERROR, str(s.get("error") or "error")))
            span.end(end_time=en or st or start)
            created[s.get("id", id(s))] = span
            pending.remove(item)
    if metadata.get("status") == "error":
        root.set_status(Status(StatusCode.ERROR))
    root.end(end_time=max(end, start))


def _has_parent(item: tuple[dict[str, Any], int, int], spans: list[dict[str, Any]]) -> bool:
    parent = item[0].get("parent_id")
    return parent is not None and any(s.get("id") == parent for s in spans)


def _span_attributes(s: dict[str, Any]) -> dict[str, Any]:
    kind, attrs = s.get("kind"), {}
    if kind == "generation":
        attrs[semconv.GEN_AI_OPERATION_NAME] = "chat"
        if s.get("model"):
            attrs[semconv.GEN_AI_REQUEST_MODEL] = attrs[semconv.GEN_AI_RESPONSE_MODEL] = s["model"]
        inp, out = s.get("input"), s.get("output")
        if isinstance(inp, list) and all(isinstance(m, dict) and "role" in m for m in inp):
            attrs[semconv.GEN_AI_INPUT_MESSAGES] = genai.dumps_messages(inp)
        if isinstance(out, str) or (isinstance(out, dict) and "role" in out):
            attrs[semconv.GEN_AI_OUTPUT_MESSAGES] = genai.dumps_output(genai.as_message(out), None)
        usage = s.get("usage") or {}
        for field, name in (
            ("input_tokens", semconv.GEN_AI_USAGE_INPUT_TOKENS),
            ("output_tokens", semconv.GEN_AI_USAGE_OUTPUT_TOKENS),
        ):
            if usage.get(field) is not None:
                attrs[name] = int(usage[field])
        if s.get("cost_usd") is not None:
            attrs[semconv.GEN_AI_USAGE_COST] = float(s["cost_usd"])
    elif kind == "tool":
        attrs[semconv.GEN_AI_OPERATION_NAME] = "execute_tool"
        attrs[semconv.GEN_AI_TOOL_NAME] = str(s.get("name", "tool"))
        if s.get("id") is not None:
            attrs[semconv.GEN_AI_TOOL_CALL_ID] = str(s["id"])
        if s.get("input") is not None:
            attrs[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] = _json(s["input"])
        if s.get("output") is not None:
            attrs[semconv.GEN_AI_TOOL_CALL_RESULT] = _json(s["output"])
    else:
        for field in ("input", "output"):
            if s.get(field) is not None:
                attrs[f"trackio.span.{field}"] = _json(s[field])
    if s.get("error"):
        attrs[semconv.ERROR_TYPE] = str(s["error"])[:200]
    for name, value in (s.get("metadata") or {}).items():
        attrs[f"trackio.span.metadata.{name}"] = _attribute(value)
    return attrs


def _attribute(value: Any) -> Any:
    """OTel attributes are primitives (or lists of one primitive type); the rest as JSON."""
    if isinstance(value, (str, bool, int, float)):
        return value
    return _json(value)


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _ns(value: Any) -> int:
    """ISO-8601 text or epoch seconds → epoch nanoseconds (0 when absent)."""
    if value is None:
        return 0
    if isinstance(value, (int, float)):
        return int(value * 1e9)
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1e9)


def _end(s: dict[str, Any], start: int) -> int:
    duration = s.get("duration_ms")
    return start + int(float(duration) * 1e6) if start and duration is not None else 0
