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


def warn_once(
    message: str, *, key: str | None = None, exc_info: BaseException | None = None
) -> None:
    """Log ``message`` the first time this process sees its ``key`` (by default its first
    80 characters, which name the problem; the rest may vary), then stay quiet: telemetry
    that fails on every batch or call must not flood the training log."""
    key = message[:80] if key is None else key
    if key not in _reported:
        _reported.add(key)
        log.warning(message, exc_info=exc_info)


def report(where: str, exc: BaseException) -> None:
    """Log the first failure of each entry point (with traceback), then stay quiet."""
    warn_once(
        f"trackio-otel: {where} failed; telemetry continues without it", key=where, exc_info=exc
    )


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
