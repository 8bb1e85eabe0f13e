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
    """One span as its Trackio trace sees it: the Trackio span's fields, the conversation
    pieces the trace joins, and what acts at trace level. Made once, when the span arrives;
    ``rows.views`` stores it with the span, and trace-level steps may change it."""

    span_id: str
    parent_id: str | None
    span_name: str
    start_ns: int
    end_ns: int
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
    """The span's ``trackio.*`` attributes (rollout identity and rewards, step, key),
    picked out once, so the trace need not scan every attribute of every span again."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Its ``KEPT_ATTRIBUTES`` that are set and not empty."""
    service: str | None = None
    training: bool = False
    """A training step or one of its phases (see ``rows.trace.is_training_step``)."""
    media: bool = False
    """Holds a ``data:`` URL that may become a Trackio media file."""
    logs: int = 0
    """How many GenAI log events of its span it was made with."""

    @classmethod
    def of(cls, span: Span, **fields: Any) -> SpanView:
        """The view of ``span`` before any family fills it: the span's own fields and the
        attributes trace-level steps read (``KEPT_ATTRIBUTES``)."""
        attrs = span.attributes
        return cls(
            span.span_id,
            span.parent_span_id,
            span.name,
            span.start_ns,
            span.end_ns,
            attributes={
                name: attrs[name] for name in KEPT_ATTRIBUTES if attrs.get(name) not in (None, "")
            },
            service=span.run.service,
            training=span.name == semconv.SPAN_TRAIN_STEP or semconv.TRAIN_PHASE in attrs,
            **fields,
        )

    def to_trackio(self, span_id: str, parent_id: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": span_id,
            "name": self.name or self.span_name,
            "kind": self.kind,
            "parent_id": parent_id,
            "start_time": pdata.iso(self.start_ns) if self.start_ns else None,
            "end_time": pdata.iso(self.end_ns) if self.end_ns else None,
            "duration_ms": round((self.end_ns - self.start_ns) / 1e6, 3)
            if self.end_ns >= self.start_ns > 0
            else None,
            "status": self.status,
        }
        for name in ("error", "model", "usage", "cost_usd", "input", "output"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out["metadata"] = self.metadata
        return out


SESSION_ATTRIBUTES = (
    "gen_ai.conversation.id",
    "session.id",
    "traceloop.association.properties.session_id",
    "langfuse.session.id",
)
USER_ATTRIBUTES = ("user.id", "enduser.id", "traceloop.association.properties.user_id")
TRACE_ATTRIBUTES = (semconv.STEP, semconv.TRACE_KEY, *SESSION_ATTRIBUTES, *USER_ATTRIBUTES)
"""Span attributes that describe the whole trace (the root's win)."""
TOOL_NAME_ATTRIBUTES = ("gen_ai.tool.name", "tool.name", "ai.toolCall.name")
RESPONSE_ATTRIBUTES = frozenset(
    {
        "gen_ai.response.finish_reasons",
        "gen_ai.response.model",
        "gen_ai.response.id",
        "llm.finish_reason",
        "llm.response.model_name",
        "ai.response.finishReason",
    }
)
"""What only a model's response carries (``pairing``: a call whose content was not
captured still has these)."""
KEPT_ATTRIBUTES = (*TRACE_ATTRIBUTES, *TOOL_NAME_ATTRIBUTES, *sorted(RESPONSE_ATTRIBUTES))
"""The span attributes a view keeps: what trace-level steps read."""


def view(span: Span, logs: list[Log]) -> SpanView:
    """The span as Trackio shows it. Its sender chose every attribute, so should reading a
    convention fail (a bug), the span is shown plainly with the error in its metadata,
    logged with its traceback, rather than the whole trace failing now and each time a
    later span of it arrives. Log events are taken in time order (then uid), so the
    view is the same whichever order they arrived in."""
    logs = sorted(logs, key=lambda log: (log.time_ns or log.observed_ns, log.uid))
    try:
        return _view(span, logs)
    except Exception as exc:
        log.exception("could not read span %s of trace %s", span.span_id, span.trace_id)
        v = SpanView.of(span, metadata=_plain(span.attributes))
        v.metadata["otel_span_id"] = span.span_id
        v.metadata["trackio_otel_error"] = f"{type(exc).__name__}: {exc}"
        return v


def _view(span: Span, logs: list[Log]) -> SpanView:
    v = SpanView.of(span)
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
    v.logs = len(logs)
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
