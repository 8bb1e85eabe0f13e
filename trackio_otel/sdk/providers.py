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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from trackio_otel import __version__, semconv
from trackio_otel.sdk import exporter as ex
from trackio_otel.sdk.ids import UrandomIdGenerator

SCOPE = "trackio_otel"
# The SDK's defaults (2048 queued, 512 per export, 5 s delay) drop spans above a few
# thousand per second; these sustain >10k/s into the embedded store (bench/bench_sdk.py)
# while bounding memory to the queue's size per signal. Each applies only where the user
# left the standard variable (OTEL_BSP_* / OTEL_BLRP_*) unset.
BATCH_DEFAULTS = {
    "MAX_QUEUE_SIZE": ("max_queue_size", 65_536),
    "MAX_EXPORT_BATCH_SIZE": ("max_export_batch_size", 4_096),
    "SCHEDULE_DELAY": ("schedule_delay_millis", 500),
}
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


class Deadline:
    """One time limit shared by a sequence of waits (each gets what is left of it)."""

    def __init__(self, timeout_ms: float) -> None:
        self._end = time.monotonic() + timeout_ms / 1000

    def left_ms(self) -> int:
        return max(0, int((self._end - time.monotonic()) * 1000))


@dataclass
class Telemetry:
    tracer: trace.Tracer
    logger: _logs.Logger
    meter_provider: MeterProvider
    identity: dict[str, str]
    """What this run's exporters stamp on every export (``Run.update_config`` changes it)."""
    span_attributes: dict[str, str]
    """On the SDK's own spans and log records: the run id (runs in one process share the
    providers, and each run's exporters keep only its own records, ``exporter.Restamp``),
    and the whole identity when the providers are the app's (for the app's exporters)."""
    _processors: list[BatchSpanProcessor | BatchLogRecordProcessor] = field(default_factory=list)
    _exporters: list[Any] = field(default_factory=list)
    _failures_told: int = 0

    def flush(self, timeout_ms: int = FLUSH_TIMEOUT_MS) -> bool:
        """Export what every signal holds, metrics first (collecting them emits nothing
        else), all within one ``timeout_ms``; False if it ran out of time or an export
        failed since the last flush. The embedded exporters answer only once committed,
        so True means stored."""
        return _bounded(timeout_ms, self._flush)

    def shutdown(self, timeout_ms: int = FLUSH_TIMEOUT_MS) -> bool:
        """Shut down what this run created (its processors export what is still queued,
        its meter provider), within ``timeout_ms``. ``flush`` first to know whether
        everything got out."""
        return _bounded(timeout_ms, lambda _: self._shutdown())

    def _flush(self, deadline: Deadline) -> bool:
        try:
            ok = self.meter_provider.force_flush(deadline.left_ms())
        except Exception:  # the SDK raises when a reader timed out or failed
            ok = False
        for p in self._processors:
            ok = p.force_flush(deadline.left_ms()) and ok
        failures = sum(e.failures for e in self._exporters)  # the SDK drops export results
        ok = ok and failures == self._failures_told
        self._failures_told = failures
        return bool(ok)

    def _shutdown(self) -> bool:
        for p in self._processors:
            p.shutdown()
        self.meter_provider.shutdown()
        return True


def _bounded(timeout_ms: float, work: Callable[[Deadline], bool]) -> bool:
    """``work(deadline)`` on a thread, waited for until the deadline: OTel exporters keep
    retrying past the timeout they are given (a metric export against a dead endpoint
    takes its own 10 s), and a program's exit must not wait for that."""
    deadline, done = Deadline(timeout_ms), []
    worker = threading.Thread(
        target=lambda: done.append(work(deadline)), name="trackio-otel-flush", daemon=True
    )
    worker.start()
    worker.join(timeout_ms / 1000)
    return bool(done and done[0])


def _batched(processor: type, exporter: Any, env_prefix: str) -> Any:
    """A batch processor sized so a training loop's bursts queue instead of dropping."""
    sizes = {
        arg: value
        for name, (arg, value) in BATCH_DEFAULTS.items()
        if not os.environ.get(f"{env_prefix}_{name}")
    }
    if "max_export_batch_size" in sizes:  # never above the queue the user chose
        queue = os.environ.get(f"{env_prefix}_MAX_QUEUE_SIZE")
        if queue and queue.isdigit():
            sizes["max_export_batch_size"] = min(sizes["max_export_batch_size"], int(queue))
    return processor(exporter, **sizes)


def setup(attributes: dict[str, Any], identity: dict[str, str], dest: Destinations) -> Telemetry:
    """Build (or join) the providers and attach this run's exporters to them.

    ``service.name`` is the project unless the app set one (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``): never ``unknown_service:python``."""
    if "service.name" not in OTELResourceDetector().detect().attributes and not os.environ.get(
        "OTEL_SERVICE_NAME"
    ):
        attributes = {"service.name": identity[semconv.PROJECT], **attributes}
    resource = Resource.create(attributes)
    tracer_provider, foreign = _sdk_provider(
        trace.get_tracer_provider(),
        TracerProvider,
        lambda: TracerProvider(resource=resource, id_generator=UrandomIdGenerator()),
        trace.set_tracer_provider,
    )
    logger_provider, _ = _sdk_provider(
        _logs.get_logger_provider(),
        LoggerProvider,
        lambda: LoggerProvider(resource=resource),
        _logs.set_logger_provider,
    )
    stamped = dict(identity)
    if not foreign:  # the app's resource (and its service.name) stays the app's
        stamped["service.name"] = str(resource.attributes["service.name"])
    elif type(tracer_provider.id_generator) is RandomIdGenerator:  # global random: see ids
        tracer_provider.id_generator = UrandomIdGenerator()
    span_exporters, log_exporters, metric_exporters = _exporters(stamped, dest)
    processors: list[Any] = []
    for e in span_exporters:
        processors.append(_batched(BatchSpanProcessor, e, "OTEL_BSP"))
        tracer_provider.add_span_processor(processors[-1])
    for e in log_exporters:
        processors.append(_batched(BatchLogRecordProcessor, e, "OTEL_BLRP"))
        logger_provider.add_log_record_processor(processors[-1])

    interval = None if os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") else METRIC_INTERVAL_MS
    readers = [
        PeriodicExportingMetricReader(e, export_interval_millis=interval) for e in metric_exporters
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
        identity=stamped,
        span_attributes=dict(identity) if foreign else {semconv.RUN_ID: identity[semconv.RUN_ID]},
        _processors=processors,
        _exporters=[*span_exporters, *log_exporters, *metric_exporters],
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
