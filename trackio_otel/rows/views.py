"""A span's contribution to its Trackio trace: computed once, when the span arrives, and
stored beside the raw span (``otel_spans.view``), so that assembling a trace later merges
stored views instead of translating every span of the trace again.

A view holds everything trace assembly reads: the Trackio span fields, the conversation
pieces, usage, the service, and the few attributes that act at trace level (step, key,
session, user, rollout fields). Its JSON form leaves out defaults and does not repeat a
generation's history when it is also the span's input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from trackio_otel import semconv
from trackio_otel.translate import pdata
from trackio_otel.translate.conventions import view as convention_view
from trackio_otel.translate.model import Log, Span

SESSION_ATTRIBUTES = (
    "gen_ai.conversation.id",
    "session.id",
    "traceloop.association.properties.session_id",
    "langfuse.session.id",
)
USER_ATTRIBUTES = ("user.id", "enduser.id", "traceloop.association.properties.user_id")
TRACE_ATTRIBUTES = (semconv.STEP, semconv.TRACE_KEY, *SESSION_ATTRIBUTES, *USER_ATTRIBUTES)
"""Span attributes that describe the whole trace (the root's win); a view keeps only these."""
_SAME = 1
"""``messages_in`` (``message_out``) stored as this when it is the span's ``input``
(``output``): a generation's history and answer are both, and stored once."""
_DATA_URL = '"data:'


def dumps(value: Any) -> str:
    """Compact JSON that Trackio's reader (``orjson.loads``) reads back: orjson's, ~4x
    the stdlib's speed. What orjson refuses comes from JSON text inside attributes:
    integers past 64 bits (the stdlib writes them; orjson reads them as floats) and lone
    surrogates (written as ``?``: neither SQLite's UTF-8 nor orjson takes them).
    Non-finite floats, which translation already spells as Trackio's strings, would
    become ``null``."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        return text.encode("utf-8", "replace").decode("utf-8")


@dataclass(slots=True)
class View:
    """One span as trace assembly sees it. Trace-level steps (``rows.trace.TRACE_STEPS``)
    may change these fields; they never see the raw span."""

    span_id: str
    parent_id: str | None
    name: str
    start_ns: int
    end_ns: int
    kind: str = "span"
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
    """The span's ``trackio.*`` attributes (rollout identity and rewards, step, key)."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Its ``TRACE_ATTRIBUTES``, those set and not empty."""
    service: str | None = None
    training: bool = False
    """A training step or one of its phases (see ``rows.trace.is_training_step``)."""
    media: bool = False
    """Holds a ``data:`` URL that may become a Trackio media file."""
    logs: int = 0
    """How many GenAI log events of its span this view was made with."""

    def to_trackio(self, span_id: str, parent_id: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": span_id,
            "name": self.name,
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


_FIELDS = (
    "kind",
    "status",
    "error",
    "model",
    "usage",
    "cost_usd",
    "input",
    "output",
    "metadata",
    "tool_call_id",
    "convention",
    "trackio",
    "attributes",
    "service",
    "training",
    "media",
    "logs",
)
_DEFAULTS = {name: View.__dataclass_fields__[name].default for name in _FIELDS}
_DEFAULTS.update(metadata={}, trackio={}, attributes={})


def of_span(span: Span, logs: list[Log]) -> View:
    """Translate one span (with the GenAI log events of its span) into its view."""
    v = convention_view(span, logs)
    attrs = span.attributes
    return View(
        span_id=span.span_id,
        parent_id=span.parent_span_id,
        name=span.name,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        kind=v.kind,
        status=v.status,
        error=v.error,
        model=v.model,
        usage=v.usage,
        cost_usd=v.cost_usd,
        input=v.input,
        output=v.output,
        metadata=v.metadata,
        messages_in=v.messages_in,
        message_out=v.message_out,
        tool_call_id=v.tool_call_id,
        convention=v.convention,
        trackio=v.trackio,
        attributes={
            name: attrs[name] for name in TRACE_ATTRIBUTES if attrs.get(name) not in (None, "")
        },
        service=span.run.service,
        training=span.name == semconv.SPAN_TRAIN_STEP or semconv.TRAIN_PHASE in attrs,
        logs=len(logs),
    )


def encode(v: View) -> str:
    """The view's JSON for ``otel_spans.view`` (its span's columns hold the rest). It
    also marks the view as holding media when its JSON shows a ``data:`` URL (the one
    scan of all its content)."""
    out = {name: value for name in _FIELDS if (value := getattr(v, name)) != _DEFAULTS[name]}
    if v.messages_in is not None:
        out["messages_in"] = _SAME if v.messages_in is v.input else v.messages_in
    if v.message_out is not None:
        out["message_out"] = _SAME if v.message_out is v.output else v.message_out
    raw = dumps(out)
    if _DATA_URL in raw and not v.media:
        v.media = True
        raw = dumps({**out, "media": True})
    return raw


def decode(
    span_id: str, parent_id: str | None, name: str, start_ns: int, end_ns: int, raw: str | bytes
) -> View:
    """A view back from its span's columns and its ``encode``d JSON."""
    stored = orjson.loads(raw)
    messages_in, message_out = stored.pop("messages_in", None), stored.pop("message_out", None)
    v = View(span_id, parent_id, name, start_ns, end_ns, **stored)
    v.messages_in = v.input if messages_in == _SAME else messages_in
    v.message_out = v.output if message_out == _SAME else message_out
    return v


def service_of(raw: str | bytes) -> str | None:
    """The service a stored view was made with."""
    return orjson.loads(raw).get("service")
