"""A span's contribution to its Trackio trace (``translate.conventions.SpanView``, made
once, when the span arrives) stored beside the raw span (``otel_spans.view``), so that
assembling a trace later merges stored views instead of translating every span of the
trace again.

Its JSON form leaves out defaults and the span's own columns, and does not repeat a
generation's history and answer when they are also the span's input and output.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from trackio_otel.translate.conventions import SpanView as View

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


_COLUMNS = ("span_id", "parent_id", "span_name", "start_ns", "end_ns")
"""A view's fields its span's own columns hold."""
_FIELDS = tuple(
    name
    for name in View.__dataclass_fields__
    if name not in (*_COLUMNS, "messages_in", "message_out")
)
_DEFAULTS = {name: View.__dataclass_fields__[name].default for name in _FIELDS}
_DEFAULTS.update(metadata={}, trackio={}, attributes={})


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
