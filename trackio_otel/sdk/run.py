"""``trackio_otel.init(...)`` → a ``Run``: wandb/trackio-style logging, emitted as OTel.

Every public method fails open: a telemetry error is logged once and the caller goes
on. Export happens on the OTel SDK's worker threads through bounded queues, so the
caller's thread never waits on I/O (``finish`` flushes, with a time limit).
"""

from __future__ import annotations

import atexit
import json
import os
import uuid
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import Logger, NoOpLogger, SeverityNumber
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.sdk.resources import OTELResourceDetector

from trackio_otel import semconv
from trackio_otel.sdk import providers
from trackio_otel.sdk.failopen import SELF, fail_open, report
from trackio_otel.sdk.rollout import Rollout
from trackio_otel.sdk.steps import Step

Scalar = int | float | bool | str


class Run:
    """A Trackio run. Use as a context manager, or call ``finish()`` (also run at exit)."""

    def __init__(
        self,
        project: str,
        name: str,
        run_id: str,
        group: str | None = None,
        config: dict[str, Any] | None = None,
        telemetry: providers.Telemetry | None = None,
    ) -> None:
        self.project, self.name, self.id, self.group = project, name, run_id, group
        self.config = dict(config or {})
        self._telemetry = telemetry
        self._next_step = 0
        self._steps: list[Step] = []
        self._sampling: Any = None
        self._finished = telemetry is None
        if telemetry is not None:
            atexit.register(self.finish)

    # --- plumbing the step and rollout objects use ---------------------------------------
    def tracer(self) -> trace.Tracer:
        return self._telemetry.tracer if self._telemetry else trace.NoOpTracer()

    def _logger(self) -> Logger:
        return self._telemetry.logger if self._telemetry else NoOpLogger("trackio_otel")

    def span_attributes(self) -> dict[str, str]:
        return self._telemetry.span_attributes if self._telemetry else {}

    @property
    def meter_provider(self) -> MeterProvider:
        return self._telemetry.meter_provider if self._telemetry else NoOpMeterProvider()

    def current_step(self) -> int:
        """The open ``run.step``'s number, else the step the next ``log`` will take."""
        return self._steps[-1].step if self._steps else self._next_step

    # --- public API ------------------------------------------------------------------------
    @fail_open()
    def log(self, values: dict[str, Any], step: int | None = None) -> None:
        """Scalars at ``step`` (default: one past the last), as one ``trackio.log`` record."""
        if step is None:
            step = self._next_step
        step = int(step)
        self._next_step = max(self._next_step, step + 1)
        body = {str(k): _scalar(v) for k, v in values.items()}
        dropped = sorted(k for k, v in body.items() if v is None)
        if dropped:
            report("Run.log", TypeError(f"only scalars are logged; dropped {dropped}"))
            body = {k: v for k, v in body.items() if v is not None}
        self._logger().emit(
            event_name=semconv.EVENT_LOG,
            body=body,
            attributes={**self.span_attributes(), semconv.STEP: step},
            severity_number=SeverityNumber.INFO,
        )

    def step(self, step: int | None = None) -> Step:
        """``with run.step(n) as s:`` times one training step (phases via ``s.phase``)."""
        try:
            return Step(self, self._next_step if step is None else int(step))
        except Exception as exc:  # still a usable context manager, recording nothing
            report("Run.step", exc)
            return Step(_disabled(), 0)

    def rollout(self, **kwargs: Any) -> Rollout:
        """``with run.rollout(step=, group=, index=, environment=, policy_version=) as r:``."""
        try:
            return Rollout(self, **kwargs)
        except Exception as exc:
            report("Run.rollout", exc)
            return Rollout(_disabled(), step=0)

    @fail_open()
    def log_trace(self, trace_obj: Any, step: int | None = None, key: str | None = None) -> None:
        """Emit a ``trackio.Trace`` (or a dict with messages/metadata/spans) as spans."""
        from trackio_otel.sdk.traces import emit_trace

        emit_trace(self, trace_obj, self.current_step() if step is None else int(step), key)

    def callback(self) -> Any:
        """A ``transformers.TrainerCallback`` bound to this run (needs transformers)."""
        from trackio_otel.integrations.transformers import TrackioCallback

        return TrackioCallback(self)

    @fail_open()
    def update_config(self, values: dict[str, Any]) -> None:
        """Add to the run's config after ``init`` (a trainer's arguments, say): what is
        exported from now on carries the merged config, and the store keeps the latest."""
        self.config.update(values)
        if self._telemetry is not None:
            self._telemetry.identity[semconv.RUN_CONFIG] = _config_json(self.config)

    @fail_open(False)
    def flush(self, timeout_s: float = 10.0) -> bool:
        """Export and commit everything recorded so far, within ``timeout_s`` for all
        signals together; False (and one warning) if something did not get out in time."""
        if self._telemetry is None:
            return True
        if not self._telemetry.flush(int(timeout_s * 1000)):
            report("Run.flush", TimeoutError(f"telemetry not all flushed within {timeout_s} s"))
            return False
        return True

    @fail_open()
    def finish(self, timeout_s: float = 5.0) -> None:
        """Flush every signal (the GPU and process metrics sampled one last time), then shut
        down the exporters and meter provider this run created, all within ``timeout_s``;
        past it (a dead endpoint) what is still unsent is dropped, with one warning. Also
        run by the context manager and at interpreter exit."""
        if self._finished:
            return
        self._finished = True
        atexit.unregister(self.finish)
        if self._telemetry is None:
            return
        deadline = providers.Deadline(timeout_s * 1000)
        flushed = self._telemetry.flush(deadline.left_ms())
        if self._sampling is not None:
            self._sampling.stop()
        closed = self._telemetry.shutdown(deadline.left_ms())
        if not (flushed and closed):
            report("Run.finish", TimeoutError(f"telemetry not all flushed within {timeout_s} s"))

    @fail_open(SELF)
    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def _start_sampling(self, gpu: bool | None) -> None:
        if gpu is False or self._telemetry is None:
            return
        try:
            from trackio_otel.sdk import gpu as gpu_module

            self._sampling = gpu_module.start_sampling(self._telemetry.meter_provider)
        except (ImportError, AttributeError) as exc:
            if gpu:
                report("GPU sampling", exc)


def init(
    project: str | None = None,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    group: str | None = None,
    run_id: str | None = None,
    endpoint: str | None = None,
    embedded: bool | None = None,
    gpu: bool | None = None,
    trackio_dir: str | os.PathLike[str] | None = None,
) -> Run:
    """Start a run. Data goes straight to the Trackio directory (no server) unless an OTLP
    endpoint is given (``endpoint=`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``); ``embedded=True``
    keeps the direct path beside it. ``gpu=None`` samples process (and GPU, if any) metrics."""
    env = OTELResourceDetector().detect().attributes  # OTEL_RESOURCE_ATTRIBUTES, decoded
    project = (
        project
        or env.get(semconv.PROJECT)
        or os.environ.get("OTEL_SERVICE_NAME")
        or env.get("service.name")
        or "default"
    )
    run_id = run_id or uuid.uuid4().hex
    name = name or f"run-{run_id[:8]}"
    try:
        identity = {semconv.PROJECT: project, semconv.RUN_NAME: name, semconv.RUN_ID: run_id}
        if group:
            identity[semconv.RUN_GROUP] = group
        if config:
            identity[semconv.RUN_CONFIG] = _config_json(config)
        dest = providers.Destinations.resolve(endpoint, embedded, trackio_dir)
        telemetry = providers.setup(dict(identity), identity, dest)
    except Exception as exc:
        report("trackio_otel.init", exc)
        return Run(project, name, run_id, group, config, telemetry=None)  # records nothing
    run = Run(project, name, run_id, group, config, telemetry)
    run._start_sampling(gpu)
    return run


def _config_json(config: dict[str, Any]) -> str:
    return json.dumps(config, separators=(",", ":"), sort_keys=True, default=str)


def _scalar(value: Any) -> Scalar | None:
    """Numbers and text as they are; numpy scalars and one-element tensors via ``.item()``."""
    if isinstance(value, Scalar):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            value = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        return value if isinstance(value, Scalar) else None
    return None


def _disabled() -> Run:
    """A run that records nothing: what a failed ``init`` returns."""
    return Run("", "", "", telemetry=None)
