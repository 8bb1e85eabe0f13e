"""Exporters: SDK records → OTLP protobuf (the OTel library's own encoders) → the store.

The embedded exporters hand the encoded request to a writer process running the
collector's translation and store, so data written without a collector is byte-for-byte
what a collector would have written, and answer SUCCESS only once it is committed. The
OTLP exporters are the standard gRPC ones. Both put the run's identity on the resource
of what they export (``restamp``), because a provider the app created (or an earlier run
in the same process) carries a resource that cannot be changed.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

# The logs encoder has no public module in opentelemetry-exporter-otlp-proto-common (the
# logs SDK itself is ``opentelemetry.sdk._logs``); this is the one the OTLP log exporter uses.
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
    ResourceMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from trackio_otel import semconv
from trackio_otel.sdk import tally
from trackio_otel.sdk.failopen import warn_once
from trackio_otel.store import default_trackio_dir
from trackio_otel.writer import Result, WriterPool

WRITE_TIMEOUT_S = 60.0
CHUNK_RECORDS = 512
"""Records per request to the writer. An export of more is encoded a chunk at a time, so
this thread encodes the next chunk while the writer process commits the one before
(encoding costs about a third of what the writer does with it); the export still returns
only once every chunk is committed."""

Identity = Mapping[str, str]
"""Resource attributes that place data in a Trackio project and run (and, where the run
chose it, ``service.name``)."""


class Restamp:
    """The run's identity on every resource: ``trackio.project`` / ``trackio.run.*`` (and
    ``service.name`` when the identity has one) replaced, everything else kept. Runs in
    one process share its providers, so records carrying another run's ``trackio.run.id``
    are dropped (records with none, such as an app's own spans, go to every run)."""

    def __init__(self, identity: Identity | None) -> None:
        self.identity = identity if identity is not None else {}
        """Read at every export, not copied: ``Run.update_config`` adds to it."""
        self._resources: dict[int, tuple[Resource, tuple[Any, ...], Resource]] = {}
        self._lock = threading.Lock()

    def resource(self, resource: Resource) -> Resource:
        identity = tuple(self.identity.items())  # one snapshot per export
        if not identity:
            return resource
        with self._lock:  # one copy per resource (one per provider) and identity
            cached = self._resources.get(id(resource))
            if cached is None or cached[0] is not resource or cached[1] != identity:
                kept = {k: v for k, v in resource.attributes.items() if not self._replaced(k)}
                stamped = Resource({**kept, **dict(identity)}, resource.schema_url)
                cached = (resource, identity, stamped)
                self._resources[id(resource)] = cached
            return cached[2]

    def spans(self, spans: Sequence[ReadableSpan]) -> list[ReadableSpan]:
        return [
            ReadableSpan(
                name=s.name,
                context=s.context,
                parent=s.parent,
                resource=self.resource(s.resource),
                attributes=s.attributes,
                events=s.events,
                links=s.links,
                kind=s.kind,
                status=s.status,
                start_time=s.start_time,
                end_time=s.end_time,
                instrumentation_scope=s.instrumentation_scope,
            )
            for s in spans
            if self._own(s.attributes)
        ]

    def logs(self, records: Sequence[ReadableLogRecord]) -> list[ReadableLogRecord]:
        return [
            dataclasses.replace(r, resource=self.resource(r.resource))
            for r in records
            if self._own(r.log_record.attributes)
        ]

    def metrics(self, data: MetricsData) -> MetricsData:
        return MetricsData(
            resource_metrics=[
                ResourceMetrics(self.resource(rm.resource), rm.scope_metrics, rm.schema_url)
                for rm in data.resource_metrics
            ]
        )

    def _own(self, attributes: Mapping[str, Any] | None) -> bool:
        run_id = self.identity.get(semconv.RUN_ID)
        if run_id is None or not attributes:
            return True
        return attributes.get(semconv.RUN_ID, run_id) == run_id

    def _replaced(self, key: str) -> bool:
        return key == semconv.PROJECT or key.startswith("trackio.run.") or key in self.identity


class Sink:
    """One writer process per Trackio directory, shared by the three signals and every
    run: decoding, translation and SQLite run there, not on the training process's GIL.
    ``TRACKIO_OTEL_WRITERS=0`` writes on a thread of this process instead.

    ``write`` waits for the commit, on the SDK's export thread (never the caller's): the
    batch processor's bounded queue is the only buffer, and its flush means committed."""

    _sinks: dict[Path, Sink] = {}
    _sinks_lock = threading.Lock()

    def __init__(self, trackio_dir: Path) -> None:
        self.trackio_dir = trackio_dir
        processes = int(os.environ.get("TRACKIO_OTEL_WRITERS", "1"))
        self._pool = WriterPool(trackio_dir, processes)  # started by its first request

    @classmethod
    def for_dir(cls, trackio_dir: Path | str | None = None) -> Sink:
        path = Path(trackio_dir) if trackio_dir else default_trackio_dir()
        with cls._sinks_lock:
            if path not in cls._sinks:
                cls._sinks[path] = Sink(path)
            return cls._sinks[path]

    def write(self, signal: str, requests: Iterator[Message]) -> bool:
        """Hand OTLP requests to the writer as they are made, then wait until all are
        committed; report problems once, never raise (the caller is an SDK worker thread)."""
        try:
            pending = [self._pool.submit(signal, r.SerializeToString()) for r in requests]
        except Exception as exc:  # the writer could not start
            return self._failed(exc)
        return all([self._committed(f) for f in pending])

    def _committed(self, pending: Future[Result]) -> bool:
        try:
            result = pending.result(WRITE_TIMEOUT_S)
        except Exception as exc:  # not committed: the writer died or timed out
            return self._failed(exc)
        for problem in result.errors[:1]:  # "where: why"; each why is told once
            warn_once(f"trackio-otel: telemetry problem: {problem}", key=problem.split(": ", 1)[-1])
        return True

    def _failed(self, exc: Exception) -> bool:
        warn_once(f"trackio-otel: could not write to {self.trackio_dir}: {exc!r}")
        return False


class _Delivering:
    """What every exporter here shares: the run's identity (``Restamp``), a name for where
    it delivers, the tally of what was delivered and the count of what failed (the SDK's
    processors and metric reader drop an export's result; ``Telemetry.flush`` reads it)."""

    failures = 0

    def _start(self, identity: Identity | None, destination: str) -> None:
        self._restamp, self.destination = Restamp(identity), destination

    def _delivered(self, ok: bool, count: Any, items: Any) -> bool:
        if ok:
            count(self.destination, items)
        else:
            self.failures += 1
        return ok


class _Embedded(_Delivering):
    """The three embedded exporters: nothing is buffered here (``write`` returns once
    committed), so flush has nothing to wait for; a shared sink is never closed."""

    def __init__(self, trackio_dir: Path | str | None = None, identity: Identity | None = None):
        super().__init__()
        self._sink = Sink.for_dir(trackio_dir)
        self._start(identity, f"Trackio directory {self._sink.trackio_dir}")

    def _write(self, signal: str, request: Message) -> bool:
        return self._sink.write(signal, iter([request]))

    def _write_chunked(
        self,
        signal: str,
        records: Sequence[Any],
        encode: Callable[[list[Any]], Message],
        trace_of: Callable[[Any], Hashable],
    ) -> bool:
        """``records`` as requests of about ``CHUNK_RECORDS``, a trace's records together
        (a trace sent whole is assembled once)."""
        return self._sink.write(signal, map(encode, _chunks(records, trace_of)))

    def force_flush(self, timeout_millis: float = 30_000, **kwargs: object) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        return None


class EmbeddedSpanExporter(_Embedded, SpanExporter):
    """Spans straight into the Trackio directory (no collector, no network)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        mine = self._restamp.spans(spans)
        ok = not mine or self._delivered(
            self._write_chunked("traces", mine, encode_spans, _trace_of_span),
            tally.spans,
            mine,
        )
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE


class EmbeddedLogExporter(_Embedded, LogRecordExporter):
    """Log records (``trackio.log`` scalars, GenAI events) straight into the Trackio directory."""

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        mine = self._restamp.logs(batch)
        ok = not mine or self._delivered(
            self._write_chunked("logs", mine, encode_logs, _trace_of_log),
            tally.logs,
            mine,
        )
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE


class EmbeddedMetricExporter(_Embedded, MetricExporter):
    """Metric points straight into the Trackio directory."""

    def __init__(self, trackio_dir: Path | str | None = None, identity: Identity | None = None):
        super().__init__(trackio_dir, identity)
        tally.counts_points(self.destination)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        data = self._restamp.metrics(metrics_data)
        ok = self._delivered(self._write("metrics", encode_metrics(data)), tally.points, data)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE


def _trace_of_span(span: ReadableSpan) -> Hashable:
    return span.context.trace_id


def _trace_of_log(record: ReadableLogRecord) -> Hashable:
    """A record outside any trace is a group of its own: untraced ``trackio.log`` scalars
    (``run.log`` outside a step) gain nothing from being kept together."""
    return record.log_record.trace_id or id(record)


def _chunks(records: Sequence[Any], trace_of: Callable[[Any], Hashable]) -> Iterator[list[Any]]:
    """``records`` in lists of about ``CHUNK_RECORDS``, those of one trace in one list."""
    by_trace: dict[Hashable, list[Any]] = {}
    for record in records:
        by_trace.setdefault(trace_of(record), []).append(record)
    chunk: list[Any] = []
    for trace in by_trace.values():
        chunk += trace
        if len(chunk) >= CHUNK_RECORDS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _Stamped(_Delivering):
    """The standard OTLP/gRPC exporters, stamping the run's identity."""

    def __init__(self, identity: Identity | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._start(identity, f"OTLP {kwargs.get('endpoint', 'endpoint')}")


class StampedOTLPSpanExporter(_Stamped, OTLPSpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        mine = self._restamp.spans(spans)
        if not mine:
            return SpanExportResult.SUCCESS
        result = super().export(mine)
        self._delivered(result is SpanExportResult.SUCCESS, tally.spans, mine)
        return result


class StampedOTLPLogExporter(_Stamped, OTLPLogExporter):
    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        mine = self._restamp.logs(batch)
        if not mine:
            return LogRecordExportResult.SUCCESS
        result = super().export(mine)
        self._delivered(result is LogRecordExportResult.SUCCESS, tally.logs, mine)
        return result


class StampedOTLPMetricExporter(_Stamped, OTLPMetricExporter):
    def __init__(self, identity: Identity | None = None, **kwargs: Any) -> None:
        super().__init__(identity, **kwargs)
        tally.counts_points(self.destination)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        data = self._restamp.metrics(metrics_data)
        result = super().export(data, timeout_millis, **kwargs)
        self._delivered(result is MetricExportResult.SUCCESS, tally.points, data)
        return result


__all__ = [
    "EmbeddedLogExporter",
    "EmbeddedMetricExporter",
    "EmbeddedSpanExporter",
    "Restamp",
    "Sink",
    "StampedOTLPLogExporter",
    "StampedOTLPMetricExporter",
    "StampedOTLPSpanExporter",
]
