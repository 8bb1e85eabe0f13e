"""Exporters: SDK objects → OTLP protobuf (the OTel library's own encoders) → the store.

The embedded exporters hand the encoded request to a writer process running the
collector's translation and store, so data written without a collector is byte-for-byte
what a collector would have written. The
OTLP exporters are the standard gRPC ones. Both stamp the run's identity on the
resource they export, because a provider the app created (or an earlier run in the same
process) carries a resource that cannot be changed.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

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
from trackio_otel.sdk.failopen import warn_once
from trackio_otel.store import default_trackio_dir
from trackio_otel.writer import Result, WriterPool

WRITE_TIMEOUT_S = 60.0
MAX_IN_FLIGHT = 2

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
            for key, value in list(identity.items()):  # one snapshot: update_config adds keys
                kv = resource.attributes.add()
                kv.key, kv.value.string_value = key, value


def _is_identity(key: str) -> bool:
    return key == semconv.PROJECT or key.startswith("trackio.run.")


def own(records: Sequence[Any], identity: Identity | None, attributes: Any) -> list[Any]:
    """The records this run's exporters keep. Runs in one process share its providers, so
    every run's processors see every run's records: those carrying another run's
    ``trackio.run.id`` are dropped (records with none, such as an app's own spans, go to
    every run)."""
    run_id = identity.get(semconv.RUN_ID) if identity else None
    if run_id is None:
        return list(records)
    return [r for r in records if attributes(r).get(semconv.RUN_ID, run_id) == run_id]


def _span_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    return span.attributes or {}


def _log_attributes(record: ReadableLogRecord) -> Mapping[str, Any]:
    return record.log_record.attributes or {}


class Sink:
    """One writer process per Trackio directory, shared by the three signals and every
    run: decoding, translation and SQLite run there, not on the training process's GIL.
    ``TRACKIO_OTEL_WRITERS=0`` writes on a thread of this process instead.

    Writes are handed off, not awaited, so the next batch is encoded while the writer
    commits this one; at most ``MAX_IN_FLIGHT`` wait at a time, which bounds memory.
    ``flush`` waits for them (the exporters' ``force_flush``/``shutdown`` and the run's
    ``flush``/``finish`` call it)."""

    _sinks: dict[Path, Sink] = {}
    _sinks_lock = threading.Lock()

    def __init__(self, trackio_dir: Path) -> None:
        self.trackio_dir = trackio_dir
        processes = int(os.environ.get("TRACKIO_OTEL_WRITERS", "1"))
        self._pool = WriterPool(trackio_dir, processes)  # started by its first request
        self._in_flight: deque[Future[Result]] = deque()
        self._lock = threading.Lock()

    @classmethod
    def for_dir(cls, trackio_dir: Path | str | None = None) -> Sink:
        path = Path(trackio_dir) if trackio_dir else default_trackio_dir()
        with cls._sinks_lock:
            if path not in cls._sinks:
                cls._sinks[path] = Sink(path)
            return cls._sinks[path]

    @classmethod
    def flush_all(cls, timeout_s: float) -> bool:
        with cls._sinks_lock:
            sinks = list(cls._sinks.values())
        return all(sink.flush(timeout_s) for sink in sinks)

    def write(self, signal: str, request: Message) -> bool:
        """Hand one OTLP request to the writer; report problems once, never raise (the
        caller is an SDK worker thread)."""
        try:
            future = self._pool.submit(signal, request.SerializeToString())
        except Exception as exc:  # the writer process could not start
            warn_once(f"trackio-otel: could not write to {self.trackio_dir}: {exc!r}")
            return False
        future.add_done_callback(self._report)
        with self._lock:
            self._in_flight.append(future)
            while self._in_flight and self._in_flight[0].done():
                self._in_flight.popleft()
            oldest = self._in_flight[0] if len(self._in_flight) > MAX_IN_FLIGHT else None
        if oldest is not None:
            wait([oldest], WRITE_TIMEOUT_S)
        return True

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything handed off is committed (or failed and reported)."""
        with self._lock:
            pending = list(self._in_flight)
        return not wait(pending, timeout_s).not_done

    def _report(self, future: Future[Result]) -> None:
        if (exc := future.exception()) is not None:
            warn_once(f"trackio-otel: could not write to {self.trackio_dir}: {exc}")
            return
        for problem in future.result().errors[:1]:  # "where: why"; each why is told once
            warn_once(f"trackio-otel: telemetry problem: {problem}", key=problem.split(": ", 1)[-1])


class _Embedded:
    """What the three embedded exporters share: the sink, the run's identity, flushing
    (a shared sink is flushed, never closed, at shutdown: other runs may use it)."""

    def __init__(self, trackio_dir: Path | str | None = None, identity: Identity | None = None):
        super().__init__()
        self._sink, self._identity = Sink.for_dir(trackio_dir), identity

    def _write(self, signal: str, request: Message) -> bool:
        stamp(request, self._identity)
        return self._sink.write(signal, request)

    def force_flush(self, timeout_millis: float = 30_000, **kwargs: object) -> bool:
        return self._sink.flush(timeout_millis / 1000)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        self._sink.flush(timeout_millis / 1000)


class EmbeddedSpanExporter(_Embedded, SpanExporter):
    """Spans straight into the Trackio directory (no collector, no network)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self._write("traces", encode_spans(own(spans, self._identity, _span_attributes)))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE


class EmbeddedLogExporter(_Embedded, LogRecordExporter):
    """Log records (``trackio.log`` scalars, GenAI events) straight into the Trackio directory."""

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        ok = self._write("logs", encode_logs(own(batch, self._identity, _log_attributes)))
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE


class EmbeddedMetricExporter(_Embedded, MetricExporter):
    """Metric points straight into the Trackio directory."""

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        ok = self._write("metrics", encode_metrics(metrics_data))
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE


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
    def _translate_data(self, data: Sequence[ReadableSpan]) -> Message:
        return super()._translate_data(own(data, self._identity, _span_attributes))


class StampedOTLPLogExporter(_Stamped, OTLPLogExporter):
    def _translate_data(self, data: Sequence[ReadableLogRecord]) -> Message:
        return super()._translate_data(own(data, self._identity, _log_attributes))


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
