"""The trackio convention layers on any family: its attributes travel as span metadata.

Trace-level meaning (step, rollout rewards) is read by ``rows.trace``; here the
attributes are made visible on the span they were set on, and kept on ``SpanView.trackio``
so the trace need not look for them among all of the span's attributes again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trackio_otel.translate import pdata
from trackio_otel.translate.model import Span

if TYPE_CHECKING:
    from trackio_otel.translate.conventions import SpanView

_TRACKIO = pdata.KeyFilter(lambda key: key.startswith("trackio."))


def fill(v: SpanView, span: Span) -> None:
    v.trackio = _TRACKIO.pick(span.attributes)
    if v.trackio:
        v.metadata.update(v.trackio)
