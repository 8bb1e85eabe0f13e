"""Telemetry never raises into user code: every public entry point goes through here."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("trackio_otel.sdk")
F = TypeVar("F", bound=Callable[..., Any])
_reported: set[str] = set()
SELF = object()
"""``fail_open(SELF)``: on failure return the instance (``__enter__`` of context managers)."""


def report(where: str, exc: BaseException) -> None:
    """Log the first failure of each entry point (with traceback), then stay quiet."""
    if where not in _reported:
        _reported.add(where)
        log.warning("trackio-otel: %s failed; telemetry continues without it", where, exc_info=exc)


def fail_open(default: Any = None) -> Callable[[F], F]:
    """Wrap ``fn`` so an exception is reported once and ``default`` returned instead."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def safe(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                report(fn.__qualname__, exc)
                return args[0] if default is SELF else default

        return safe  # type: ignore[return-value]

    return wrap
