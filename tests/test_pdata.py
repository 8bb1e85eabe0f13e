"""The shared helpers the translators' speed rests on must answer exactly as the standard
library and the plain comprehension they replace."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from trackio_otel.translate import pdata

VALUES: list[Any] = [
    "plain",
    'quote " backslash \\ newline \n tab \t nul \x00',
    "naïve ☃ 中文 emoji 😀",
    "lone surrogate \ud800",
    {"b": 1, "a": [1.5, -0.0, 10**20, True, None, {"nested": ["x", {"y": []}]}]},
    [1e16, 1e-7, 3.141592653589793, -(2**63)],
    {"": "", "key with \u2028": "value"},
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    [],
    {},
    0,
    None,
]


@pytest.mark.parametrize(
    "options",
    [
        {"separators": (",", ":"), "ensure_ascii": False, "allow_nan": False},
        {"sort_keys": True, "ensure_ascii": False, "default": str},
        {},
    ],
)
def test_json_encoder_matches_the_standard_library(options: dict[str, Any]) -> None:
    encode = pdata.json_encoder(**options)
    reference = json.JSONEncoder(**options)
    for value in VALUES:
        assert _outcome(encode, value) == _outcome(reference.encode, value), value


def _outcome(encode: Any, value: Any) -> str:
    """The JSON, or the type of error raised (sorting keys of mixed types raises)."""
    try:
        return encode(value)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__


def test_json_encoder_raises_where_the_standard_library_does() -> None:
    encode = pdata.json_encoder(allow_nan=False)
    with pytest.raises(ValueError):
        encode({"x": math.nan})
    with pytest.raises(TypeError):
        encode({"x": object()})
    assert pdata.json_encoder(default=str)({"x": b"raw"}) == '{"x": "b\'raw\'"}'


def test_dumps_is_compact_and_keeps_unicode() -> None:
    assert pdata.dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'


def test_key_filter_picks_in_order_and_stays_bounded() -> None:
    calls: list[str] = []

    def test(key: str) -> bool:
        calls.append(key)
        return key.startswith("keep.")

    picker = pdata.KeyFilter(test, max_keys=3)
    attrs = {"keep.b": 1, "drop": 2, "keep.a": 3}
    assert list(picker.pick(attrs).items()) == [("keep.b", 1), ("keep.a", 3)]
    assert picker.pick(attrs) == {"keep.b": 1, "keep.a": 3}
    assert calls == ["keep.b", "drop", "keep.a"]  # each key tested once
    picker.pick({f"keep.{i}": i for i in range(10)})
    assert len(picker) <= 3
