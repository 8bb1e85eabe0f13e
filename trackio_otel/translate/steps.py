"""The one reading of ``trackio.step`` (spans, ``trackio.log`` events, metric points).

A step is an integer within ``±semconv.MAX_STEP``: an int, an integral float (``12.0``), or
a decimal string (``"12"``, what string-only attribute paths such as baggage produce). A bool
is not a step (``True`` is not step 1), a fraction is not silently truncated, and a step past
the bound is refused: the store numbers a step-less trace as 1 + its run's highest step, so
one huge step would otherwise make every later step-less trace of that run overflow SQLite.
"""

from __future__ import annotations

import math
import re
from typing import Any

from trackio_otel import semconv

_DECIMAL = re.compile(r"[+-]?[0-9]{1,20}")


def parse(value: Any) -> int | None:
    """``value`` as a step; None when absent. Raises ``ValueError`` saying why it is not one."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{semconv.STEP} must be an integer, not the bool {value}")
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise ValueError(f"{semconv.STEP} must be an integer, not {value!r}")
        value = int(value)
    elif isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise ValueError(f"{semconv.STEP} must be an integer, not the string {value[:40]!r}")
        value = int(value)
    elif not isinstance(value, int):
        raise ValueError(f"{semconv.STEP} must be an integer, not a {type(value).__name__}")
    if abs(value) > semconv.MAX_STEP:
        raise ValueError(f"{semconv.STEP} {value} is beyond ±{semconv.MAX_STEP} (2^53-1)")
    return value


def error(value: Any) -> str | None:
    """Why ``value`` is not a step (naming the attribute), or None when it is one or absent."""
    try:
        parse(value)
    except ValueError as exc:
        return f"attributes[{semconv.STEP}]: {exc}"
    return None


def of(value: Any) -> int | None:
    """``value`` as a step, or None when absent or not a step (``error`` says why)."""
    try:
        return parse(value)
    except ValueError:
        return None
