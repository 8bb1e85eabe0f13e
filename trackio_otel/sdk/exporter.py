"""Exporters: SDK objects → OTLP protobuf (the OTel library's own encoders) → the store.

The embedded exporters run the collector's translation and store in process, so data
written without a collector is byte-for-byte what a collector would have written. The
OTLP exporters are the standard gRPC ones. Both stamp the run's identity on the
resource they export, because a provider the app created (or an earlier run in the same
process) carries a resource that cannot be changed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from google.protobuf.message import Message
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from trackio_otel import semconv
from trackio_otel.store.sqlite import SQLiteStore, default_trackio_dir
from trackio_otel.translate import logs as tlogs
from trackio_otel.translate import metrics as tmetrics
from trackio_otel.translate import spans as tspans
from trackio_otel.translate.model import Batch

log = logging.getLogger(__name__)

Identity = Mapping[str, str]
"""Resource attributes that place data in a Trackio project and run."""


def stamp(request: Message, identity: Identity | None) -> None:
    """Replace every ``trackio.project`` / ``trackio.run.*`` attribute on the resources of
    an OTLP export request with ``identity``."""
    if not identity:
        return
    for name in ("resource_spans", "resource_logs", "resource_metrics"):
        for item in getattr(request, name, ()):
            resource = item.resource
            keep = [kv for kv in resource.attributes if not _is_identity(kv.key)]
            del resource.attributes[:]
            resource.attributes.extend(keep)
            for key, value in identity.items():
                kv = resource.attributes.add()
                kv.key, kv.value.string_value = key, value


def _is_identity(key: str) -> bool:
    return key == semconv.PROJECT or key.startswith("trackio.run.")


class Sink:
    """One store per Trackio directory, shared by the three signals; writes serialised."""

    _sinks: dict[Path, Sink] = {}
    _sinks_lock = threading.Lock()

    def __init__(self, trackio_dir: Path) -> None:
        self.store = SQLiteStore(trackio_dir)
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    @classmethod
    def for_dir(cls, trackio_dir: Path | str | None = None) -> Sink:
        path = Path(trackio_dir) if trackio_dir else default_trackio_dir()
        with cls._sinks_lock:
            if path not in cls._sinks:
                cls._sinks[path] = Sink(path)
            return cls._sinks[path]

    def write(self, batch: Batch) -> bool:
        for problem in batch.errors[:1]:
            self._warn_once(f"trackio-otel: telemetry problem: {problem}")
        try:
            with self._lock:
                self.store.write(batch)
        except Exception as exc:  # the caller is an SDK worker thread: report, never raise
            self._warn_once(f"trackio-otel: could not write to {self.store.trackio_dir}: {exc!r}")
            return False
        return True

    def _warn_once(self, message: str) -> None:
        key = message[:80]
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)


class EmbeddedSpanExporter(SpanExporter):
    """Spans straight into the Trackio directory (no collector, no network)."""

    def __init__(self, trackio_dir: Path | str | None = None, identity: Identity | None = None):
        self._sink, self._identity = Sink.for_dir(trackio_dir), identity

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        request = encode_spans(spans)
        stamp(request, self._identity)
        ok = self._sink.write(tspans.from_request(request))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE


class EmbeddedLogExporter(LogRecordExporter):
    """Log records (``trackio.log`` scalars, GenAI events) straight into the Trackio directory."""

    def __init__(self, trackio_dir: Path | str | None = None, identity: Identity | None = None):
        self._sink, self._identity = Sink.for_dir(trackio_dir), identity

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        request = encode_logs(batch)
        stamp(request, self._identity)
        ok = self._sink.write(tlogs.from_request(request))
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


class EmbeddedMetricExporter(MetricExporter):
    """Metric points straight into the Trackio directory."""

    def __init__(self, trackio_dir: Path | str | None = None, identity: Identity | None = None):
        super().__init__(preferred_temporality={})
        self._sink, self._identity = Sink.for_dir(trackio_dir), identity

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        request = encode_metrics(metrics_data)
        stamp(request, self._identity)
        ok = self._sink.write(tmetrics.from_request(request))
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        pass


class _Stamped:
    """Mixin for the standard OTLP/gRPC exporters: the run's identity on every resource."""

    def __init__(self, identity: Identity | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._identity = identity

    def _translate_data(self, data: object) -> Message:
        request = super()._translate_data(data)  # type: ignore[misc]
        stamp(request, self._identity)
        return request


class StampedOTLPSpanExporter(_Stamped, OTLPSpanExporter):
    pass


class StampedOTLPLogExporter(_Stamped, OTLPLogExporter):
    pass


class StampedOTLPMetricExporter(_Stamped, OTLPMetricExporter):
    pass


__all__ = [
    "EmbeddedLogExporter",
    "EmbeddedMetricExporter",
    "EmbeddedSpanExporter",
    "Sink",
    "StampedOTLPLogExporter",
    "StampedOTLPMetricExporter",
    "StampedOTLPSpanExporter",
    "stamp",
]
