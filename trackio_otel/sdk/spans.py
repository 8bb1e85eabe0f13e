"""Span lifecycle pieces shared by rollouts, steps and phases."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from trackio_otel import semconv


def record_error(span: trace.Span, error: BaseException | str) -> None:
    """Mark ``span`` failed as the OTel conventions do: the exception event, ERROR status,
    and ``error.type`` (which the collector reads as the Trackio span's error)."""
    if isinstance(error, BaseException):
        span.record_exception(error)
        kind, message = type(error).__qualname__, f"{type(error).__name__}: {error}"
    else:
        kind, message = "ToolError", error
    span.set_attribute(semconv.ERROR_TYPE, kind)
    span.set_status(Status(StatusCode.ERROR, message))


def leave(span: trace.Span, token: object | None, error: BaseException | None) -> None:
    """Leave a ``with`` scope: restore the caller's context and record how it ended."""
    if token is not None:
        otel_context.detach(token)
    if error is not None:
        record_error(span, error)
