"""OTLP/JSON → protobuf messages.

The OTLP JSON encoding is protobuf's JSON mapping with three differences (OTLP
specification, "JSON Protobuf Encoding"): trace and span ids are hex strings, not base64;
enums are integers (protobuf's parser accepts those); and unknown fields must be ignored.
Field names may be lowerCamelCase or the original snake_case, as protobuf's parser allows.
So the ids are converted to the base64 that ``json_format`` expects, and the rest is its
job.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

M = TypeVar("M", bound=Message)

ID_FIELDS = frozenset(
    {"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"}
)
"""Every OTLP field holding a trace or span id (spans, links, log records, exemplars); no
other OTLP message has a field by these names, and attribute keys are values, not names."""
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


def parse(payload: bytes, message_type: type[M]) -> M:
    """Decode an OTLP/JSON request; ``DecodeError`` names what is wrong."""
    try:
        tree = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise DecodeError(f"not JSON: {exc}") from exc
    if not isinstance(tree, dict):
        raise DecodeError(f"expected a JSON object, got {type(tree).__name__}")
    hex_ids_to_base64(tree)
    try:
        return json_format.ParseDict(tree, message_type(), ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as exc:
        raise DecodeError(str(exc)) from exc


def hex_ids_to_base64(tree: dict[str, Any]) -> None:
    """Rewrite every id field of a decoded OTLP/JSON document in place (iteratively: a
    document nested past Python's recursion limit is refused by protobuf, not by us)."""
    stack: list[Any] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key in ID_FIELDS and isinstance(value, str):
                    node[key] = _hex_to_base64(key, value)
                elif isinstance(value, (dict, list)):
                    stack.append(value)


def _hex_to_base64(field: str, value: str) -> str:
    if not _HEX.fullmatch(value):
        raise DecodeError(f"{field}: expected a hex string, got {value[:40]!r}")
    return base64.b64encode(bytes.fromhex(value)).decode()
