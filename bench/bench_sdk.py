"""What the SDK costs: per call against the raw OTel SDK, and embedded export throughput.

    python bench/bench_sdk.py [--seconds 1.0] [--spans 30000]

1. Per-call cost on the caller's thread (a generation with messages, a tool call, a step
   with four phases) next to the same spans made with the raw OTel SDK, both on one
   TracerProvider whose exporter discards (target: ≤ 1.5×).
2. Embedded throughput: a burst of rollouts (3 spans each) through the run's batch
   processor into SQLite, counted back from ``otel_spans`` (target: ≥ 10,000 spans/s, no
   drops), and the same burst through the SDK's default BatchSpanProcessor; and the
   embedded exporter alone on pre-made spans (the writer's own rate), against the floor
   of bench/floor.py on the same spans.
3. A dead endpoint: a step + rollout loop whose OTLP endpoint has nothing listening, next
   to the same loop with the default embedded export, and how long ``finish`` then takes.
4. GPU sampling: CPU per collection of two fake GPUs plus process metrics
   (``tests/fake_nvml.py``) next to the raw OTel SDK collecting as many constant gauges,
   and what that is as a share of one core at 1 Hz.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ["TRACKIO_DIR"] = tempfile.mkdtemp(prefix="bench-sdk-")  # counts start from zero
os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)

import pytest
from opentelemetry import _logs, trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.metrics import Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import trackio_otel
from trackio_otel.sdk import genai, gpu

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the loop and fake NVML in tests/
import floor  # bench/floor.py: this script runs with bench/ first on sys.path

from tests.fake_nvml import FakeGpu, FakeNvml
from tests.training import train
from trackio_otel.sdk.exporter import EmbeddedSpanExporter

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the weather in Paris?"},
]
CALL = {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"c": "P"}'}}
ANSWER = {"role": "assistant", "content": None, "tool_calls": [CALL]}
ROUNDS = 8
"""Alternating rounds per call type in ``bench_calls``."""


class Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def per_call(fn: Callable[[], None], seconds: float) -> float:
    """Mean µs per call over ``seconds``."""
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        n += 100
    return elapsed / n * 1e6


def paired(sdk: Callable[[], None], raw: Callable[[], None], seconds: float) -> list[float]:
    """µs per call of ``sdk`` and of ``raw`` in ``ROUNDS`` alternating rounds (after a
    warm-up), so drift within the run hits both alike: [sdk, raw, sdk, raw, ...]."""
    for fn in (sdk, raw):
        for _ in range(200):
            fn()
    return [per_call(fn, seconds / ROUNDS) for _ in range(ROUNDS) for fn in (sdk, raw)]


def bench_calls(seconds: float) -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=1 << 20))
    trace.set_tracer_provider(provider)
    _logs.set_logger_provider(LoggerProvider())
    run = trackio_otel.init(project="bench", embedded=False, gpu=False)
    tracer, logger = provider.get_tracer("raw"), _logs.get_logger("raw")
    rollout = run.rollout(step=0).__enter__()
    parent = trace.set_span_in_context(rollout._span)

    def sdk_generation() -> None:
        rollout.messages = list(MESSAGES)
        rollout.generation(
            model="m",
            output=ANSWER,
            usage={"input_tokens": 9, "output_tokens": 3},
            finish_reason="tool_calls",
        )

    def raw_generation() -> None:
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "m",
            "gen_ai.response.model": "m",
            "gen_ai.input.messages": genai.dumps_messages(MESSAGES),
            "gen_ai.output.messages": genai.dumps_output(ANSWER, "tool_calls"),
            "gen_ai.response.finish_reasons": ["tool_calls"],
            "gen_ai.usage.input_tokens": 9,
            "gen_ai.usage.output_tokens": 3,
        }
        tracer.start_span(
            "chat m", context=parent, attributes=attrs, kind=trace.SpanKind.CLIENT
        ).end()

    def sdk_tool() -> None:
        rollout.messages = []
        rollout.tool_call("w", {"c": "P"}, call_id="c1", result={"t": 12})

    def raw_tool() -> None:
        attrs = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "w",
            "gen_ai.tool.call.id": "c1",
            "gen_ai.tool.call.arguments": json.dumps({"c": "P"}),
            "gen_ai.tool.call.result": json.dumps({"t": 12}),
        }
        tracer.start_span(
            "execute_tool w", context=parent, attributes=attrs, kind=trace.SpanKind.CLIENT
        ).end()

    def sdk_step() -> None:
        with run.step(1) as s:
            for phase in ("data_wait", "forward", "backward", "optimizer"):
                with s.phase(phase):
                    pass
            s.log({"loss": 0.5})

    def raw_step() -> None:
        t0 = time.perf_counter_ns()
        with tracer.start_as_current_span("trackio.train.step", attributes={"trackio.step": 1}):
            times = {}
            for phase in ("data_wait", "forward", "backward", "optimizer"):
                p0 = time.perf_counter_ns()
                with tracer.start_as_current_span(phase, attributes={"trackio.train.phase": phase}):
                    pass
                times[f"train/phase/{phase}_ms"] = (time.perf_counter_ns() - p0) / 1e6
        body = {"train/step_time_ms": (time.perf_counter_ns() - t0) / 1e6, "loss": 0.5, **times}
        logger.emit(event_name="trackio.log", body=body, attributes={"trackio.step": 1})

    print("per call on the caller's thread (µs), SDK vs raw OTel SDK:")
    for name, sdk, raw in (
        ("generation (2 messages in, tool call out)", sdk_generation, raw_generation),
        ("tool call", sdk_tool, raw_tool),
        ("step with 4 phases + its log record", sdk_step, raw_step),
    ):
        times = paired(sdk, raw, seconds)
        a, b = statistics.mean(times[::2]), statistics.mean(times[1::2])
        ratios = sorted(x / y for x, y in zip(times[::2], times[1::2], strict=True))
        print(
            f"  {name:44s} sdk {a:7.1f}  raw {b:7.1f}  ratio {statistics.median(ratios):4.2f}x "
            f"(median of {ROUNDS} paired rounds; {ratios[0]:.2f}-{ratios[-1]:.2f}x)"
        )
    rollout.__exit__(None, None, None)
    run.finish()


def count_spans(project: str) -> int:
    db = Path(os.environ["TRACKIO_DIR"]) / f"{project}.db"
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM otel_spans").fetchone()[0]


def burst(tracer: trace.Tracer, rollouts: int) -> float:
    """Emit ``rollouts`` rollouts of 3 spans; return the seconds it took the caller."""
    start = time.perf_counter()
    for i in range(rollouts):
        with tracer.start_as_current_span("trackio.rollout", attributes={"trackio.step": i}):
            tracer.start_span("chat m", attributes={"gen_ai.operation.name": "chat"}).end()
            tracer.start_span(
                "execute_tool w", attributes={"gen_ai.operation.name": "execute_tool"}
            ).end()
    return time.perf_counter() - start


def floor_rate(spans: Sequence[ReadableSpan], batch: int) -> float:
    """The floor (bench/floor.py) on the same spans: OTLP-encode each batch with the public
    encoder, then decode → translate → executemany; spans/s."""
    db = floor.open_db(Path(tempfile.mkdtemp(prefix="bench-floor-")) / "floor.db")
    start = time.perf_counter()
    for i in range(0, len(spans), batch):
        floor.write(db, encode_spans(spans[i : i + batch]).SerializeToString())
    elapsed = time.perf_counter() - start
    db.close()
    return len(spans) / elapsed


def bench_exporter(spans: int) -> None:
    """The embedded exporter alone (encode → translate → SQLite), on pre-made spans, against
    the floor on the same spans, measured before and after it (the mean of the two)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    burst(provider.get_tracer("bench"), spans // 3)
    made = memory.get_finished_spans()
    exporter = EmbeddedSpanExporter(identity={"trackio.project": "bench-exporter"})
    exporter.export(made[:300])  # opens the database
    rest = made[300:]
    before = floor_rate(rest, 4096)
    start = time.perf_counter()
    for i in range(0, len(rest), 4096):
        exporter.export(rest[i : i + 4096])
    exporter.force_flush()  # nothing left: export returns once committed
    ours = len(rest) / (time.perf_counter() - start)
    after = floor_rate(rest, 4096)
    mean = (before + after) / 2
    print(
        f"embedded exporter alone, 4096-span batches: {ours:,.0f} spans/s, "
        f"{ours / mean:.2f}x the floor's {mean:,.0f} (decode → translate → executemany, "
        f"{before:,.0f} before and {after:,.0f} after)"
    )


def bench_throughput(spans: int) -> None:
    rollouts = spans // 3
    run = trackio_otel.init(project="bench-embedded", gpu=False)  # the run's tuned processor
    t0 = time.perf_counter()
    emit_s = burst(run.tracer(), rollouts)
    run.finish(timeout_s=120)
    total_s = time.perf_counter() - t0
    got = count_spans("bench-embedded")
    print(
        f"embedded, tuned batch processor: {rollouts * 3} spans emitted in {emit_s:.2f} s, "
        f"stored in {total_s:.2f} s → {got / total_s:,.0f} spans/s, "
        f"dropped {rollouts * 3 - got}"
    )

    provider = TracerProvider()  # the SDK's defaults: 2048 queued, 512 per batch, 5 s delay
    processor = BatchSpanProcessor(
        EmbeddedSpanExporter(identity={"trackio.project": "bench-default"})
    )
    provider.add_span_processor(processor)
    t0 = time.perf_counter()
    emit_s = burst(provider.get_tracer("bench"), rollouts)
    processor.shutdown()
    total_s = time.perf_counter() - t0
    got = count_spans("bench-default")
    print(
        f"embedded, default BatchSpanProcessor: {rollouts * 3} spans emitted in {emit_s:.2f} s, "
        f"stored {got} in {total_s:.2f} s, dropped {rollouts * 3 - got} "
        f"({(rollouts * 3 - got) / (rollouts * 3):.0%})"
    )


def training_loop(run: trackio_otel.Run, steps: int) -> float:
    """µs per iteration of ``tests/training.py``'s loop (a step and a rollout)."""
    start = time.perf_counter()
    train(run, steps)
    return (time.perf_counter() - start) / steps * 1e6


def bench_dead_endpoint(steps: int) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    live = trackio_otel.init(project="bench-live", gpu=False)
    live_us = training_loop(live, steps)
    t0 = time.perf_counter()
    live.finish(timeout_s=60)
    live_finish = time.perf_counter() - t0
    dead = trackio_otel.init(
        project="bench-dead", endpoint=f"127.0.0.1:{port}", embedded=False, gpu=False
    )
    dead_us = training_loop(dead, steps)
    t0 = time.perf_counter()
    dead.finish(timeout_s=1.0)
    dead_finish = time.perf_counter() - t0
    print(
        f"step + rollout, dead endpoint vs embedded: {dead_us:.0f} vs {live_us:.0f} µs "
        f"(ratio {dead_us / live_us:.2f}x); finish {dead_finish:.2f} s (asked 1.0) "
        f"vs {live_finish:.2f} s"
    )


def per_collection(reader: InMemoryMetricReader, n: int) -> tuple[float, int]:
    """CPU seconds per collection over ``n``, and the data points one collection holds."""
    reader.get_metrics_data()  # warm-up
    start = time.process_time()
    for _ in range(n):
        data = reader.get_metrics_data()
    cpu = (time.process_time() - start) / n
    return cpu, sum(
        len(m.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    )


def bench_gpu_sampling(collections: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        FakeNvml([FakeGpu("GPU-0a0a"), FakeGpu("GPU-1b1b")]).install(patch)
        patch.setattr(gpu, "_init", None)
        reader = InMemoryMetricReader()
        gpu.start_sampling(MeterProvider(metric_readers=[reader]))
        ours, points = per_collection(reader, collections)

    raw_reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[raw_reader]).get_meter("raw")
    for i in range(points):
        meter.create_observable_gauge(f"g{i}", callbacks=[lambda _: [Observation(1.0)]])
    raw, raw_points = per_collection(raw_reader, collections)
    print(
        f"GPU sampling (2 fake GPUs + process, {points} points): {ours * 1e3:.3f} ms CPU per "
        f"collection = {ours * 100:.3f}% of a core at 1 Hz; raw OTel, {raw_points} constant "
        f"gauges: {raw * 1e3:.3f} ms (ratio {ours / raw:.2f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0, help="per measured call type")
    parser.add_argument("--spans", type=int, default=30_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    print(f"TRACKIO_DIR={os.environ['TRACKIO_DIR']}")
    bench_calls(args.seconds)
    bench_exporter(args.spans)
    bench_throughput(args.spans)
    bench_dead_endpoint(200)
    bench_gpu_sampling(200)


if __name__ == "__main__":
    main()
