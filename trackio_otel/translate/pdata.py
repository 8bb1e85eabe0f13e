"""Plain-Python views of OTLP protobuf values, shared by every translator.

OTLP carries attribute values as ``AnyValue`` trees; everything downstream wants dicts,
lists and scalars that ``json.dumps`` accepts. IDs travel as raw bytes and are shown as
lowercase hex, the form every OTel tool prints.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable
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


def json_number(x: float) -> float | str:
    """Trackio stores non-finite floats as the strings "NaN", "Infinity", "-Infinity"."""
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


_COMPACT = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
)


def dumps(obj: Any) -> str:
    """Compact JSON, the only form Trackio's tab detection recognises.

    One shared encoder: ``json.dumps`` with options builds a new one per call, and this
    runs several times per span on the collector's hot path. Values here are trees built
    from protobuf or JSON, never circular, so the per-container cycle check is skipped."""
    return _COMPACT.encode(obj)


def iso(unix_nano: int) -> str:
    """Trackio's one timestamp format: aware-UTC ``isoformat`` with microseconds,
    e.g. ``2026-11-22T22:53:36.316062+00:00``."""
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    return f"{_iso_second(seconds)}.{nanos // 1000:06d}+00:00"


@lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of a second; cached, since a batch's spans share seconds."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def now_nano() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1e9)


_DECODER = json.JSONDecoder()
_JSON_WHITESPACE = " \t\n\r"


def parse_json(value: Any) -> Any:
    """Decode a JSON string attribute, leaving anything else (or broken JSON) as it is.

    This runs on every message attribute. The value is known to start with its JSON, so
    ``raw_decode`` spares the argument checks and whitespace scans of ``json.loads``;
    anything but whitespace after the document makes it broken JSON, as there."""
    if isinstance(value, str) and value[:1] in ("[", "{", '"'):
        try:
            parsed, end = _DECODER.raw_decode(value)
        except ValueError:
            return value
        return value if value[end:].strip(_JSON_WHITESPACE) else parsed
    return value


def id_error(raw: bytes, size: int, *, required: bool) -> str | None:
    """Why ``raw`` is not a valid OTLP id of ``size`` bytes, or None if it is."""
    if not raw:
        return "is missing" if required else None
    if len(raw) != size:
        return f"must be {size} bytes, got {len(raw)}"
    if not any(raw):
        return "must not be all zeros"
    return None
