"""How the SDK's telemetry leaves the process: SUCCESS means committed, flush has one
deadline and says when it failed, and the user's OTEL_BSP_* settings win."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from trackio.sqlite_storage import SQLiteStorage

import trackio_otel
from tests.conftest import free_port, traces_of
from trackio_otel.sdk import exporter as exporter_module
from trackio_otel.sdk import providers
from trackio_otel.sdk.exporter import EmbeddedSpanExporter


def test_embedded_export_answers_success_once_committed(trackio_dir, project):
    """While Trackio's project lock is held nothing can commit, so export must not answer;
    once it is released, export answers SUCCESS and the rows are there. The export is
    larger than one request to the writer, and its traces' spans are interleaved."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"trackio.project": project}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    roots = [tracer.start_span(f"s{i}") for i in range(400)]
    for _ in range(2):
        for root in roots:  # each trace's spans end 400 spans apart
            tracer.start_span("child", context=trace.set_span_in_context(root)).end()
    for root in roots:
        root.end()
    assert len(memory.get_finished_spans()) > 2 * exporter_module.CHUNK_RECORDS
    exporter = EmbeddedSpanExporter(trackio_dir)
    answers: list[SpanExportResult] = []
    with open(trackio_dir / f"{project}.lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # Trackio's own ProcessLock
        worker = threading.Thread(
            target=lambda: answers.append(exporter.export(memory.get_finished_spans()))
        )
        worker.start()
        worker.join(1.5)
        assert not answers, "answered before anything could commit"
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    worker.join(60)
    assert answers == [SpanExportResult.SUCCESS]
    with sqlite3.connect(SQLiteStorage.get_project_db_path(project)) as db:
        assert db.execute("SELECT count(*) FROM otel_spans").fetchone() == (1200,)
    traces = traces_of(project)
    assert len(traces) == 400 and {len(t["spans"]) for t in traces} == {3}


def test_a_traces_log_records_go_together_and_untraced_ones_are_chunked():
    """The writer gets a trace's records in one request (assembled once), while records
    outside any trace (``run.log`` between steps) still go a chunk at a time."""
    memory = InMemoryLogExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("t")
    n = exporter_module.CHUNK_RECORDS
    with TracerProvider().get_tracer("t").start_as_current_span("step"):
        for _ in range(n + 10):
            logger.emit(body="in the step")
    for _ in range(2 * n):
        logger.emit(body="between steps")
    records = memory.get_finished_logs()
    chunks = exporter_module._chunks(records, exporter_module._trace_of_log)
    assert [len(c) for c in chunks] == [n + 10, n, n]


def _dead_endpoint_run(project: str) -> trackio_otel.Run:
    """Spans, log records and process metrics, all for an endpoint nobody listens on."""
    run = trackio_otel.init(
        project=project, endpoint=f"127.0.0.1:{free_port()}", embedded=False, gpu=None
    )
    with run.rollout(step=0) as r:
        r.generation(model="m", output="x")
    run.log({"loss": 1.0})
    return run


def test_flush_keeps_one_shared_deadline(project, monkeypatch, caplog):
    """Each export retries for 4 s: flush gives up after the 2 s it was given for all
    signals together (each signal used to get its own, and a metric export its 4 s)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "4")
    run = _dead_endpoint_run(project)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="trackio_otel.sdk"):
        assert run.flush(timeout_s=2.0) is False
    elapsed = time.monotonic() - started
    assert elapsed < 3.5, elapsed
    assert "Run.flush failed" in caplog.text
    run.finish(timeout_s=15)  # let the retries end here, not in a later test's log


def test_flush_reports_exports_that_failed(project, monkeypatch):
    """Exports that give up within the deadline still mean nothing was delivered (the
    SDK's processors drop the result; its force_flush says only that it finished)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "0.5")
    run = _dead_endpoint_run(project)
    assert run.flush(timeout_s=10) is False
    run.finish(timeout_s=15)


@pytest.mark.parametrize(
    "env, queue, batch",
    [
        ({}, 65_536, 4_096),  # ours, sized for training loops
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "64", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8"}, 64, 8),
        ({"OTEL_BSP_MAX_QUEUE_SIZE": "300"}, 300, 300),  # the SDK's own: batch ≤ queue
    ],
)
def test_the_users_batch_settings_win(monkeypatch, env, queue, batch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    processor = providers._batched(BatchSpanProcessor, InMemorySpanExporter(), "OTEL_BSP")
    inner = processor._batch_processor  # the SDK keeps the sizes here (private)
    assert (inner._max_queue_size, inner._max_export_batch_size) == (queue, batch)
    processor.shutdown()


def test_service_name_is_the_project_unless_the_app_set_one(trackio_dir, project):
    with trackio_otel.init(project=project, gpu=False) as run, run.rollout(step=0) as r:
        r.generation(model="m", output="x")
    (trace,) = traces_of(project)
    assert trace["metadata"]["service_name"] == project  # was unknown_service:python

    app = f"{project}-app"
    script = (
        "import sys, trackio_otel\n"
        "with trackio_otel.init(project=sys.argv[1], gpu=False) as run, run.rollout(step=0) as r:\n"
        "    r.generation(model='m', output='x')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, app],
        env={**os.environ, "TRACKIO_DIR": str(trackio_dir), "OTEL_SERVICE_NAME": "the-app"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (trace,) = traces_of(app)
    assert trace["metadata"]["service_name"] == "the-app"
