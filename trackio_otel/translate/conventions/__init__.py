"""Per-span convention detection: one OTel span (+ its log events) → a Trackio span view.

A trace often mixes families (a framework span around a provider span), so the
convention is decided per span: the first family whose ``detect`` matches fills the view.
Each family is a module with ``NAME``, ``detect(attributes)`` and ``fill(view, span, logs)``;
add one by appending it to ``FAMILIES``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from trackio_otel import semconv
from trackio_otel.translate import pdata
from trackio_otel.translate.conventions import (
    genai,
    genai_legacy,
    openinference,
    openllmetry,
    traceloop,
    trackio,
    vercel_ai,
)
from trackio_otel.translate.model import Log, Span

log = logging.getLogger(__name__)
STATUS_ERROR = 2
FAMILIES: list[ModuleType] = [
    openinference,
    vercel_ai,
    genai,
    openllmetry,
    genai_legacy,
    traceloop,
]
"""Reference §6.2's order: a span matching several (OpenLLMetry's flattened form also sets
``gen_ai.system``; OpenInference may dual-emit ``gen_ai.*``; the Vercel AI SDK's model
calls carry ``gen_ai.system`` beside its own ``ai.*``) takes the first."""
MAX_METADATA_TEXT = 1024
_CLASS_REPR = re.compile(r"^<class '(?:.*\.)?([^.']+)'>$")


@dataclass(slots=True)
class SpanView:
    """What a Trackio span needs, plus the conversation pieces the trace assembler joins."""

    span: Span
    kind: str = "span"
    name: str | None = None
    """The span's name in Trackio when the family names it better than the OTel span does."""
    status: str = "success"
    error: str | None = None
    model: str | None = None
    usage: dict[str, int] | None = None
    cost_usd: float | None = None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    messages_in: list[dict[str, Any]] | None = None
    message_out: dict[str, Any] | None = None
    tool_call_id: str | None = None
    convention: str | None = None
    trackio: dict[str, Any] = field(default_factory=dict)
    """The span's ``trackio.*`` attributes, picked out once: the trace reads its rollout
    fields from these instead of scanning every attribute of every span again."""

    def to_trackio(self, span_id: str, parent_id: str | None) -> dict[str, Any]:
        s = self.span
        out: dict[str, Any] = {
            "id": span_id,
            "name": self.name or s.name,
            "kind": self.kind,
            "parent_id": parent_id,
            "start_time": pdata.iso(s.start_ns) if s.start_ns else None,
            "end_time": pdata.iso(s.end_ns) if s.end_ns else None,
            "duration_ms": round((s.end_ns - s.start_ns) / 1e6, 3)
            if s.end_ns >= s.start_ns > 0
            else None,
            "status": self.status,
        }
        for name in ("error", "model", "usage", "cost_usd", "input", "output"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out["metadata"] = self.metadata
        return out


def view(span: Span, logs: list[Log]) -> SpanView:
    """The span as Trackio shows it. Its sender chose every attribute, so should reading a
    convention fail (a bug), the span is shown plainly with the error in its metadata,
    logged with its traceback, rather than the whole trace failing now and each time a
    later span of it arrives."""
    try:
        return _view(span, logs)
    except Exception as exc:
        log.exception("could not read span %s of trace %s", span.span_id, span.trace_id)
        v = SpanView(span, metadata=_plain(span.attributes))
        v.metadata["otel_span_id"] = span.span_id
        v.metadata["trackio_otel_error"] = f"{type(exc).__name__}: {exc}"
        return v


def _view(span: Span, logs: list[Log]) -> SpanView:
    v = SpanView(span)
    attrs = span.attributes
    if span.status_code == STATUS_ERROR or semconv.ERROR_TYPE in attrs:
        v.status = "error"
        v.error = (
            span.status_message or _error_text(span) or _class_name(attrs.get(semconv.ERROR_TYPE))
        )
    for family in FAMILIES:
        if family.detect(attrs):
            v.convention = family.NAME
            family.fill(v, span, logs)
            break
    else:
        v.metadata = _plain(attrs)
    if v.tool_call_id is not None:  # an attribute: any value the sender chose, an array too
        v.tool_call_id = str(v.tool_call_id)
    trackio.fill(v, span)
    v.metadata["otel_span_id"] = span.span_id
    if v.convention:
        v.metadata["convention"] = v.convention
    return v


def _error_text(span: Span) -> str | None:
    for event in span.events:
        if event["name"] == "exception":
            a = event["attributes"]
            kind, message = a.get("exception.type"), a.get("exception.message")
            return f"{kind}: {message}" if kind and message else (message or kind)
    return None


def _class_name(value: Any) -> str | None:
    """util-genai 1.1 writes ``error.type`` as ``<class 'openai.InternalServerError'>``."""
    if value is None:
        return None
    match = _CLASS_REPR.match(str(value))
    return match.group(1) if match else str(value)


def _plain(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: _short(val) for k, val in attrs.items()}


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_METADATA_TEXT:
        return value[:MAX_METADATA_TEXT] + "…"
    return value
