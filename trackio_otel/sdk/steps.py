"""Training steps: a step span with phase children, and the step's scalars.

Besides the spans, a step's wall time and its per-phase times go out as scalars in the
step's ``trackio.log`` record (``train/step_time_ms``, ``train/phase/<phase>_ms``), so
Trackio plots step time and its breakdown per step with no collector-side mapping.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from trackio_otel import semconv
from trackio_otel.sdk.failopen import SELF, fail_open
from trackio_otel.sdk.spans import leave

if TYPE_CHECKING:
    from trackio_otel.sdk.run import Run

STEP_TIME_KEY = "train/step_time_ms"
PHASE_KEY = "train/phase/{}_ms"


class Step:
    """``with run.step(n) as s:`` then ``with s.phase("forward"):`` … ``s.log({...})``."""

    def __init__(self, run: Run, step: int) -> None:
        self._run, self.step = run, step
        self._scalars: dict[str, Any] = {}
        self._phase_ms: dict[str, float] = defaultdict(float)
        self._span: trace.Span = trace.INVALID_SPAN
        self._token: object | None = None
        self._t0 = 0

    @fail_open(SELF)
    def __enter__(self) -> Step:
        self._t0 = time.perf_counter_ns()
        attrs = {**self._run.span_attributes(), semconv.STEP: self.step}
        self._span = self._run.tracer().start_span(semconv.SPAN_TRAIN_STEP, attributes=attrs)
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        self._run._steps.append(self)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._close(exc)

    @fail_open()
    def _close(self, exc: BaseException | None) -> None:
        elapsed_ms = (time.perf_counter_ns() - self._t0) / 1e6
        if self in self._run._steps:
            self._run._steps.remove(self)
        leave(self._span, self._token, exc)
        self._token = None
        self._span.end()
        scalars = {STEP_TIME_KEY: round(elapsed_ms, 4), **self._scalars}
        for name, ms in self._phase_ms.items():
            scalars[PHASE_KEY.format(name)] = round(ms, 4)
        self._run.log(scalars, step=self.step)

    def phase(self, name: str) -> Phase:
        """Time one phase of this step (``semconv.PHASES`` are the usual names)."""
        return Phase(self, name)

    @fail_open()
    def record_phase(self, name: str, start_ns: int, end_ns: int) -> None:
        """A phase timed elsewhere (hooks, callbacks): epoch ``time.time_ns()`` bounds."""
        ctx = trace.set_span_in_context(self._span)
        attrs = {**self._run.span_attributes(), semconv.TRAIN_PHASE: name}
        span = self._run.tracer().start_span(
            name, context=ctx, attributes=attrs, start_time=start_ns
        )
        span.end(end_time=end_ns)
        self._phase_ms[name] += (end_ns - start_ns) / 1e6

    @fail_open()
    def log(self, values: dict[str, Any]) -> None:
        """Scalars for this step, sent with its step time when the step ends."""
        self._scalars.update(values)


class Phase:
    """A child span of the step; its duration adds to the step's ``train/phase/<name>_ms``."""

    def __init__(self, step: Step, name: str) -> None:
        self._step, self.name = step, name
        self._span: trace.Span = trace.INVALID_SPAN
        self._t0 = 0

    @fail_open(SELF)
    def __enter__(self) -> Phase:
        ctx = trace.set_span_in_context(self._step._span)
        attrs = {**self._step._run.span_attributes(), semconv.TRAIN_PHASE: self.name}
        self._span = self._step._run.tracer().start_span(self.name, context=ctx, attributes=attrs)
        self._t0 = time.perf_counter_ns()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._close(exc)

    @fail_open()
    def _close(self, exc: BaseException | None) -> None:
        self._step._phase_ms[self.name] += (time.perf_counter_ns() - self._t0) / 1e6
        leave(self._span, None, exc)
        self._span.end()
