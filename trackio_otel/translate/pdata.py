"""Plain-Python views of OTLP protobuf values, shared by every translator.

OTLP carries attribute values as ``AnyValue`` trees; everything downstream wants dicts,
lists and scalars that ``json.dumps`` accepts. IDs travel as raw bytes and are shown as
lowercase hex, the form every OTel tool prints.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8


def any_value(value: AnyValue) -> Any:
    """Convert an ``AnyValue`` to JSON-ready Python (bytes become base64 text)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return json_number(value.double_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP key/value list → dict (a repeated key keeps its last value, as the SDKs do).

    This runs for every attribute, and most values are strings or ints. A member of the
    ``value`` oneof that is not set reads as its default, so a non-empty string or non-zero
    int can only be the set one: those are taken without asking ``WhichOneof``, and
    everything else (empty strings and zeros included) goes through ``any_value``."""
    out: dict[str, Any] = {}
    for kv in pairs:
        value = kv.value
        out[kv.key] = value.string_value or value.int_value or any_value(value)
    return out


class KeyFilter(dict[str, bool]):
    """Picks the attributes whose key passes ``test``, testing each distinct key once.

    Attribute keys repeat from span to span, so remembering the answer turns a few prefix
    scans per attribute into one dict lookup. Keys are not a closed set (flattened message
    keys carry indexes), so the memory is dropped when it grows past ``max_keys``."""

    __slots__ = ("_max_keys", "_test")

    def __init__(self, test: Callable[[str], bool], max_keys: int = 10_000) -> None:
        super().__init__()
        self._test = test
        self._max_keys = max_keys

    def __missing__(self, key: str) -> bool:
        if len(self) >= self._max_keys:
            self.clear()
        passed = self[key] = self._test(key)
        return passed

    def pick(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The attributes whose key passes, in their order."""
        return {k: val for k, val in attrs.items() if self[k]}


def text(value: Any) -> str | None:
    """A string attribute's value, else None: an attribute may hold any value the sender
    chose (an array, a map), and looking that up in a set of names would raise."""
    return value if isinstance(value, str) else None


def json_number(x: float) -> float | str:
    """Trackio stores non-finite floats as the strings "NaN", "Infinity", "-Infinity"."""
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def json_encoder(**options: Any) -> Callable[[Any], str]:
    """``json.JSONEncoder(**options).encode`` (no ``indent``), with its C encoder built once.

    ``encode`` builds a new C encoder on every call (about 0.7 µs), paid several times per
    span on the collector's hot path. Values here are trees built from protobuf or JSON,
    never circular, so the per-container cycle check is skipped."""
    encoder = json.JSONEncoder(check_circular=False, **options)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: nothing to build once
        return encoder.encode
    # The arguments JSONEncoder.iterencode gives it for a one-shot encode without indent.
    encode = make(
        None,
        encoder.default,
        json.encoder.encode_basestring_ascii
        if encoder.ensure_ascii
        else json.encoder.encode_basestring,
        None,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )
    return lambda obj: "".join(encode(obj, 0))


dumps = json_encoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""Compact JSON, the only form Trackio's tab detection recognises."""


def iso(unix_nano: int) -> str:
    """Trackio's one timestamp format: aware-UTC ``isoformat`` with microseconds,
    e.g. ``2026-11-22T22:53:36.316062+00:00``."""
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    micros = str(nanos // 1000).zfill(6)  # zfill: cheaper than the format spec 06d
    return f"{_iso_second(seconds)}.{micros}+00:00"


@lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a second; cached, since a batch's spans share seconds."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def now_nano() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1e9)


def _finite_float(text: str) -> float | str:
    return json_number(float(text))  # 1e999 parses as inf


_DECODER = json.JSONDecoder(parse_constant=lambda name: name, parse_float=_finite_float)
"""Python's decoder also takes ``NaN``, ``Infinity`` and overflowing numbers, which ``dumps``
(like Trackio's orjson) refuses: they become Trackio's strings for non-finite floats."""
_JSON_WHITESPACE = " \t\n\r"
MAX_JSON_DEPTH = 64
"""Deepest JSON taken apart from a string attribute; deeper text stays text. Every later
step (conventions, media, encoding) recurses per level, so a sender must not choose the
depth; real messages and tool arguments nest a handful of levels."""


def loads(text: str) -> Any:
    """``json.loads`` for text from the wire: ``ValueError`` also when nested past
    ``MAX_JSON_DEPTH`` (where the decoder itself would raise ``RecursionError``)."""
    parsed, end = _decode(text)
    if text[end:].strip(_JSON_WHITESPACE):
        raise ValueError(f"extra data at character {end}")
    return parsed


def parse_json(value: Any) -> Any:
    """Decode a JSON string attribute, leaving anything else (or broken JSON) as it is.

    This runs on every message attribute. The value is known to start with its JSON, so
    ``raw_decode`` spares the argument checks and whitespace scans of ``json.loads``;
    anything but whitespace after the document makes it broken JSON, as there."""
    if isinstance(value, str) and value[:1] in ("[", "{", '"'):
        try:
            return loads(value)
        except ValueError:
            return value
    return value


def _decode(text: str) -> tuple[Any, int]:
    try:
        parsed, end = _DECODER.raw_decode(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    # Nesting needs an opening bracket per level: only text with many can be too deep.
    if text.count("[", 0, end) + text.count("{", 0, end) > MAX_JSON_DEPTH and _too_deep(parsed):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return parsed, end


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests containers deeper than ``MAX_JSON_DEPTH`` (no recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


MAX_INT64 = 2**63 - 1


def uint64_error(value: int) -> str | None:
    """Why an OTLP fixed64 (a time in ns, a count) cannot be stored: SQLite's INTEGER is
    signed 64-bit, so values past 2^63-1 (times after 2262-04-11) are refused."""
    if value > MAX_INT64:
        return f"{value} exceeds 2^63-1, the largest integer SQLite stores (ns: 2262-04-11)"
    return None


def id_error(raw: bytes, size: int, *, required: bool) -> str | None:
    """Why ``raw`` is not a valid OTLP id of ``size`` bytes, or None if it is."""
    if not raw:
        return "is missing" if required else None
    if len(raw) != size:
        return f"must be {size} bytes, got {len(raw)}"
    if not any(raw):
        return "must not be all zeros"
    return None
