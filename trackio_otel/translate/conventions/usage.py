"""Token usage and cost, read the same way for every convention.

Each convention only says where it writes usage (a ``Names`` table); reading the counts,
choosing the total, and deciding whether a span's usage is counted (a model call) or kept
as ``metadata.aggregate_*`` (an agent or chain that repeats its children's totals, never
summed) happens here once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trackio_otel.translate.conventions import SpanView


@dataclass(frozen=True, slots=True)
class Names:
    """Attribute names that have carried each Trackio usage key; the first present wins."""

    input_tokens: tuple[str, ...]
    output_tokens: tuple[str, ...]
    total_tokens: tuple[str, ...]
    details: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Optional keys (cache reads and writes, reasoning), in the order they are written."""
    cost: str | None = None


def read(a: dict[str, Any], names: Names) -> dict[str, int] | None:
    """Trackio's usage dict, or None when the span reports neither input nor output tokens.
    A missing or zero total is the sum of input and output."""
    inp, out = _count(a, names.input_tokens), _count(a, names.output_tokens)
    if inp is None and out is None:
        return None
    usage = {"input_tokens": inp or 0, "output_tokens": out or 0}
    usage["total_tokens"] = (
        _count(a, names.total_tokens) or usage["input_tokens"] + usage["output_tokens"]
    )
    for key, attrs in names.details.items():
        value = _count(a, attrs)
        if value is not None:
            usage[key] = value
    return usage


def record(v: SpanView, a: dict[str, Any], names: Names, *, counted: bool) -> None:
    """Read usage and cost from ``a`` onto ``v``: as the span's own when it is a model call
    (``counted``), else as aggregates that the trace never sums."""
    usage = read(a, names)
    cost = a.get(names.cost) if names.cost else None
    if counted:
        v.usage, v.cost_usd = usage, cost
    else:
        _aggregate(v, usage, cost)


def demote(v: SpanView) -> None:
    """``v``'s usage and cost become aggregates: it wraps another call that counts them."""
    usage, cost = v.usage, v.cost_usd
    v.usage = v.cost_usd = None
    _aggregate(v, usage, cost)


def _aggregate(v: SpanView, usage: dict[str, int] | None, cost: Any) -> None:
    if usage:
        v.metadata["aggregate_usage"] = usage
    if cost is not None:
        v.metadata["aggregate_cost_usd"] = cost


def _count(a: dict[str, Any], names: tuple[str, ...]) -> int | None:
    """The first of ``names`` that holds a token count (a non-bool finite number or a
    decimal string); anything else is treated as absent rather than failing the span."""
    for name in names:
        value = a.get(name)
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                continue
    return None
