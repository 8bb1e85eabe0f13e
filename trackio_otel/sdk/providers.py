"""Where a run's telemetry goes: the OTel providers it emits through and their exporters.

If the app already set SDK providers, the run cooperates: it adds its processors to the
app's tracer and logger providers (so the app's own spans land in Trackio too) instead of
replacing them. Their resource cannot change, so every exporter of the run stamps the
run's identity on what it exports, and the SDK's own spans also carry it as attributes
for the app's exporters. A MeterProvider takes readers only when it is built, so beside
an app's one the run keeps a private MeterProvider for its own metrics (GPU sampling).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from trackio_otel import __version__, semconv
from trackio_otel.sdk import exporter as ex

SCOPE = "trackio_otel"
# The SDK's defaults (2048 queued, 512 per export, 5 s delay) drop spans above a few
# thousand per second; these sustain >10k/s into the embedded store (bench/bench_sdk.py)
# while bounding memory to MAX_QUEUE items per signal.
MAX_QUEUE = 65_536
MAX_EXPORT_BATCH = 4_096
SCHEDULE_DELAY_MS = 500
METRIC_INTERVAL_MS = 10_000
FLUSH_TIMEOUT_MS = 5_000
_OWNED = "_trackio_otel_owned"


@dataclass
class Destinations:
    embedded: bool
    endpoint: str | None
    trackio_dir: Path | None = None

    @classmethod
    def resolve(
        cls, endpoint: str | None, embedded: bool | None, trackio_dir: Path | str | None = None
    ) -> Destinations:
        """``endpoint`` (else ``OTEL_EXPORTER_OTLP_ENDPOINT``) → OTLP; embedded by default
        when there is no endpoint, or alongside it when ``embedded=True``."""
        env = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
        target = endpoint or env
        return cls(
            embedded=(target is None) if embedded is None else embedded,
            endpoint=target,
            trackio_dir=Path(trackio_dir) if trackio_dir else None,
        )


@dataclass
class Telemetry:
    tracer: trace.Tracer
    logger: _logs.Logger
    meter_provider: metrics.MeterProvider
    identity: dict[str, str]
    """What this run's exporters stamp on every export (``Run.update_config`` changes it)."""
    span_attributes: dict[str, str]
    """On the SDK's own spans and log records: the run id (runs in one process share the
    providers, and each run's exporters keep only its own records, ``exporter.own``), and
    the whole identity when the providers are the app's (for the app's exporters)."""
    _span_processors: list[BatchSpanProcessor] = field(default_factory=list)
    _log_processors: list[BatchLogRecordProcessor] = field(default_factory=list)
    _own_meter_provider: MeterProvider | None = None

    def flush(self, timeout_ms: int = FLUSH_TIMEOUT_MS) -> None:
        for p in [*self._span_processors, *self._log_processors]:
            p.force_flush(timeout_ms)  # hands batches to the exporters
        if self._own_meter_provider is not None:
            self._own_meter_provider.force_flush(timeout_ms)
        ex.Sink.flush_all(timeout_ms / 1000)  # the embedded writers commit what they were handed

    def shutdown(self, timeout_ms: int = FLUSH_TIMEOUT_MS) -> bool:
        """Flush, then shut down what this run created (its processors, its meter provider),
        giving up after ``timeout_ms``: the SDK's flush waits out an exporter's retries
        (10 s against a dead endpoint), and a program's exit must not."""
        worker = threading.Thread(target=self._shutdown, name="trackio-otel-shutdown", daemon=True)
        worker.start()
        worker.join(timeout_ms / 1000)
        return not worker.is_alive()

    def _shutdown(self) -> None:
        for p in [*self._span_processors, *self._log_processors]:
            p.shutdown()  # exports what is queued first
        if self._own_meter_provider is not None:
            self._own_meter_provider.shutdown()


def _batched(processor: type, exporters: list[Any]) -> list[Any]:
    """Batch processors sized so a training loop's bursts queue instead of dropping."""
    return [
        processor(
            e,
            max_queue_size=MAX_QUEUE,
            schedule_delay_millis=SCHEDULE_DELAY_MS,
            max_export_batch_size=MAX_EXPORT_BATCH,
        )
        for e in exporters
    ]


def setup(attributes: dict[str, Any], identity: dict[str, str], dest: Destinations) -> Telemetry:
    """Build (or join) the providers and attach this run's exporters to them."""
    resource = Resource.create(attributes)
    span_exporters, log_exporters, metric_exporters = _exporters(identity, dest)

    tracer_provider, foreign = _sdk_provider(
        trace.get_tracer_provider(),
        TracerProvider,
        lambda: TracerProvider(resource=resource),
        trace.set_tracer_provider,
    )
    span_processors = _batched(BatchSpanProcessor, span_exporters)
    for p in span_processors:
        tracer_provider.add_span_processor(p)

    logger_provider, _ = _sdk_provider(
        _logs.get_logger_provider(),
        LoggerProvider,
        lambda: LoggerProvider(resource=resource),
        _logs.set_logger_provider,
    )
    log_processors = _batched(BatchLogRecordProcessor, log_exporters)
    for p in log_processors:
        logger_provider.add_log_record_processor(p)

    readers = [
        PeriodicExportingMetricReader(e, export_interval_millis=METRIC_INTERVAL_MS)
        for e in metric_exporters
    ]
    # shut down by the run (finish or its atexit hook), not by the SDK's own atexit hook
    meter_provider = MeterProvider(
        metric_readers=readers, resource=resource, shutdown_on_exit=False
    )
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        metrics.set_meter_provider(meter_provider)

    return Telemetry(
        tracer=tracer_provider.get_tracer(SCOPE, __version__),
        logger=logger_provider.get_logger(SCOPE, __version__),
        meter_provider=meter_provider,
        identity=identity,
        span_attributes=dict(identity) if foreign else {semconv.RUN_ID: identity[semconv.RUN_ID]},
        _span_processors=span_processors,
        _log_processors=log_processors,
        _own_meter_provider=meter_provider,
    )


def _sdk_provider(current: Any, sdk_type: type, create: Any, set_global: Any) -> tuple[Any, bool]:
    """(provider to use, whether it is the app's). Ours is created and made global once per
    process; later runs join it like an app's, their exporters stamping their identity."""
    if isinstance(current, sdk_type):
        return current, not getattr(current, _OWNED, False)
    provider = create()
    setattr(provider, _OWNED, True)
    set_global(provider)  # refused (with a warning) if the app set a non-SDK provider
    return provider, False


def _exporters(
    identity: dict[str, str], dest: Destinations
) -> tuple[list[Any], list[Any], list[MetricExporter]]:
    spans: list[Any] = []
    logs: list[Any] = []
    metric: list[MetricExporter] = []
    if dest.embedded:
        spans.append(ex.EmbeddedSpanExporter(dest.trackio_dir, identity))
        logs.append(ex.EmbeddedLogExporter(dest.trackio_dir, identity))
        metric.append(ex.EmbeddedMetricExporter(dest.trackio_dir, identity))
    if dest.endpoint:
        kwargs: dict[str, Any] = {"endpoint": dest.endpoint}
        if "://" not in dest.endpoint:
            kwargs["insecure"] = True  # host:port, as the collector prints it
        spans.append(ex.StampedOTLPSpanExporter(identity, **kwargs))
        logs.append(ex.StampedOTLPLogExporter(identity, **kwargs))
        metric.append(ex.StampedOTLPMetricExporter(identity, **kwargs))
    return spans, logs, metric
