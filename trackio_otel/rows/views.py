"""A span's contribution to its Trackio trace (``translate.conventions.SpanView``, made
once, when the span arrives) stored beside the raw span (``otel_spans.view``), so that
assembling a trace later merges stored views instead of translating every span of the
trace again.

Its JSON form leaves out defaults and the span's own columns, and does not repeat a
generation's history and answer when they are also the span's input and output. Once its
trace's Trackio row holds the span as it was made, the view is stored *thin*: its input,
output and metadata (nearly all of its bytes: the conversation) are read back from that
row's ``spans`` entry, which Trackio needs anyway, instead of being stored twice.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from trackio_otel.translate.conventions import SpanView as View

_SAME = 1
"""``messages_in`` (``message_out``) stored as this when it is the span's ``input``
(``output``): a generation's history and answer are both, and stored once."""
_IN_ROW = 0
"""``io`` stored as this: the view is thin, its input, output and metadata are its span's
entry in the trace's ``traces`` row."""
_THIN_END = f'"io":{_IN_ROW}}}'
_INLINE_IMAGE = ";base64,"
"""In every inline image that ``conventions.media`` would place (its data URL pattern
requires it): a view whose JSON shows it is marked as holding media, and kept whole."""


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


_COLUMNS = ("span_id", "parent_id", "span_name", "start_ns", "end_ns")
"""A view's fields its span's own columns hold."""
_FIELDS = tuple(
    name
    for name in View.__dataclass_fields__
    if name not in (*_COLUMNS, "messages_in", "message_out", "input", "output", "metadata")
)
_DEFAULTS = {name: View.__dataclass_fields__[name].default for name in _FIELDS}
_DEFAULTS.update(trackio={}, attributes={})


Io = tuple[Any, Any, dict[str, Any]]
"""A span's (input, output, metadata) as its Trackio ``spans`` entry holds them."""


def encode(v: View) -> tuple[str, str | None]:
    """The view's JSON for ``otel_spans.view`` (its span's columns hold the rest), whole
    and thin (None: nothing to leave out, or it holds media, whose row copy is rewritten
    when placed). Metadata, input and output go last, so the thin form is the whole
    one's start. It also marks the view as holding media when its JSON may show an
    inline image (the one scan of all its content)."""
    out = {name: value for name in _FIELDS if (value := getattr(v, name)) != _DEFAULTS[name]}
    if v.messages_in is not None:
        out["messages_in"] = _SAME if v.messages_in is v.input else v.messages_in
    if v.message_out is not None:
        out["message_out"] = _SAME if v.message_out is v.output else v.message_out
    rest = dumps(out)
    tail = [f'"metadata":{dumps(v.metadata)}'] if v.metadata else []
    if v.input is not None or v.output is not None:
        tail.append(f'"io":{dumps([v.input, v.output])}')
    if not v.media and any(_INLINE_IMAGE in part for part in (rest, *tail)):
        v.media = True
        rest = dumps({**out, "media": True})
    if not tail:
        return rest, None
    head = rest[:-1] + ("," if len(rest) > 2 else "")
    return f"{head}{','.join(tail)}}}", None if v.media else head + _THIN_END


def is_thin(raw: str) -> bool:
    """Whether a stored view reads its input and output from its trace's row."""
    return raw.endswith(_THIN_END)


def decode(
    span_id: str,
    parent_id: str | None,
    name: str,
    start_ns: int,
    end_ns: int,
    raw: str | bytes,
    io: Io | None = None,
) -> View:
    """A view back from its span's columns and its ``encode``d JSON; ``io``: its input,
    output and metadata from the trace's row, for a thin one (None: the row lacks the
    span, so it shows none)."""
    stored = orjson.loads(raw)
    kept = stored.pop("io", None)
    if kept == _IN_ROW:
        stored["input"], stored["output"], stored["metadata"] = io or (None, None, {})
    elif kept is not None:  # else stored before "io": as "input" and "output", if any
        stored["input"], stored["output"] = kept
    messages_in, message_out = stored.pop("messages_in", None), stored.pop("message_out", None)
    v = View(span_id, parent_id, name, start_ns, end_ns, **stored)
    v.messages_in = v.input if messages_in == _SAME else messages_in
    v.message_out = v.output if message_out == _SAME else message_out
    return v


def row_io(spans: str | bytes) -> dict[str, Io]:
    """Per OTel span id, the (input, output, metadata) of a ``traces`` row's ``spans``."""
    out = {}
    for entry in orjson.loads(spans):
        meta = entry.get("metadata") if isinstance(entry, dict) else None
        if isinstance(meta, dict) and "otel_span_id" in meta:
            out[meta["otel_span_id"]] = (entry.get("input"), entry.get("output"), meta)
    return out


def service_of(raw: str | bytes) -> str | None:
    """The service a stored view was made with."""
    return orjson.loads(raw).get("service")
