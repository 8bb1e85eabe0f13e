"""Traceloop SDK entity spans: ``@workflow`` / ``@task`` / ``@agent`` / ``@tool`` decorators.

They carry no LLM content of their own; their I/O is the decorated function's call
(``traceloop.entity.input`` = ``{"args": [...], "kwargs": {...}}``) and return value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trackio_otel import semconv
from trackio_otel.translate import pdata
from trackio_otel.translate.conventions import genai
from trackio_otel.translate.model import Log, Span

if TYPE_CHECKING:
    from trackio_otel.translate.conventions import SpanView

NAME = "traceloop"
KIND = "traceloop.span.kind"


def detect(attrs: dict[str, Any]) -> bool:
    return KIND in attrs


def fill(v: SpanView, span: Span, logs: list[Log]) -> None:
    a = span.attributes
    v.kind = "tool" if a.get(KIND) == "tool" else "span"
    v.metadata = genai.metadata(span)
    for name, value in a.items():
        if name.startswith("traceloop.") and name not in (
            "traceloop.entity.input",
            "traceloop.entity.output",
        ):
            v.metadata[name] = value
    v.input = call_input(pdata.parse_json(a.get("traceloop.entity.input")))
    v.output = pdata.parse_json(a.get("traceloop.entity.output"))
    if v.kind == "tool":
        v.tool_call_id = a.get(semconv.GEN_AI_TOOL_CALL_ID)
        if v.input is None:
            v.input = {"tool": a.get(semconv.GEN_AI_TOOL_NAME) or a.get("traceloop.entity.name")}


def call_input(value: Any) -> Any:
    """``{"args": [...], "kwargs": {...}}`` → the keyword arguments alone, or the single
    positional one, when that is all the call had (what a tool's arguments look like)."""
    if not isinstance(value, dict) or set(value) != {"args", "kwargs"}:
        return value
    args, kwargs = value["args"] or [], value["kwargs"] or {}
    if not args:
        return kwargs
    if not kwargs:
        return args[0] if len(args) == 1 else args
    return value
