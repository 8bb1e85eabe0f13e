"""``run.log_trace(trackio.Trace(...))``: a Trace payload re-expressed as OTel spans.

A root span carries the step, key, metadata and the whole conversation; each Trace span
becomes a child span in the GenAI convention (generations as ``chat``, tools as
``execute_tool`` whose call id is the Trace span id), so the collector's assembler gives
back the same messages, execution tree and tool pairing.
"""

from __future__ import annotations

import time
from collections import defaultdict
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
    for s, st, en in _parents_first(list(zip(spans, starts, ends, strict=True))):
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
    if metadata.get("status") == "error":
        root.set_status(Status(StatusCode.ERROR))
    root.end(end_time=max(end, start))


def _parents_first(items: list[tuple[dict[str, Any], int, int]]) -> list[Any]:
    """Each span after its parent, in O(n). Spans whose parent is not among them (or that
    sit on a cycle) hang off the root: they come first, or last for a cycle."""
    ids = {item[0].get("id") for item in items if item[0].get("id") is not None}
    children: dict[Any, list[Any]] = defaultdict(list)
    order = []
    for item in items:
        parent = item[0].get("parent_id")
        if parent is not None and parent in ids and parent != item[0].get("id"):
            children[parent].append(item)
        else:
            order.append(item)
    for item in order:  # grows while it is walked: breadth first from the roots
        order.extend(children.pop(item[0].get("id"), ()))
    placed = {id(item) for item in order}
    return order + [item for item in items if id(item) not in placed]


def _span_attributes(s: dict[str, Any]) -> dict[str, Any]:
    kind, attrs = s.get("kind"), {}
    if kind == "generation":
        inp, out = s.get("input"), s.get("output")
        history = inp if isinstance(inp, list) and all(_is_message(m) for m in inp) else None
        answer = genai.as_message(out) if isinstance(out, str) or _is_message(out) else None
        attrs.update(
            genai.generation_attributes(
                s.get("model"), history, answer, usage=s.get("usage"), cost_usd=s.get("cost_usd")
            )
        )
    elif kind == "tool":
        attrs.update(
            genai.tool_attributes(
                str(s.get("name", "tool")), s.get("id"), s.get("input"), s.get("output")
            )
        )
    else:
        for field in ("input", "output"):
            if s.get(field) is not None:
                attrs[f"trackio.span.{field}"] = genai.to_json(s[field])
    if s.get("error"):
        attrs[semconv.ERROR_TYPE] = str(s["error"])[:200]
    for name, value in (s.get("metadata") or {}).items():
        attrs[f"trackio.span.metadata.{name}"] = _attribute(value)
    return attrs


def _attribute(value: Any) -> Any:
    """OTel attributes are primitives (or lists of one primitive type); the rest as JSON."""
    if isinstance(value, (str, bool, int, float)):
        return value
    return genai.to_json(value)


def _is_message(value: Any) -> bool:
    return isinstance(value, dict) and "role" in value


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
