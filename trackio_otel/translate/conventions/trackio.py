"""The trackio convention layers on any family: its attributes travel as span metadata.

Trace-level meaning (step, rollout rewards) is read by ``translate.trace``; here the
attributes are only made visible on the span they were set on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trackio_otel.translate.model import Span

if TYPE_CHECKING:
    from trackio_otel.translate.conventions import SpanView


def fill(v: SpanView, span: Span) -> None:
    for key, value in span.attributes.items():
        if key.startswith("trackio."):
            v.metadata[key] = value
