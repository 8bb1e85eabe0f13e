"""How the SDK's telemetry leaves the process: SUCCESS means committed, flush has one
deadline and says when it failed, and the user's OTEL_BSP_* settings win."""

from __future__ import annotations

import fcntl
import logging
import sqlite3
import threading
import time

import pytest
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
from tests.conftest import free_port
from trackio_otel.sdk import providers
from trackio_otel.sdk.exporter import EmbeddedSpanExporter


def test_embedded_export_answers_success_once_committed(trackio_dir, project):
    """While Trackio's project lock is held nothing can commit, so export must not answer;
    once it is released, export answers SUCCESS and the rows are there."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"trackio.project": project}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for i in range(50):
        with provider.get_tracer("t").start_as_current_span(f"s{i}"):
            pass
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
        assert db.execute("SELECT count(*) FROM otel_spans").fetchone() == (50,)


def test_flush_fails_loudly_within_one_shared_deadline(project, caplog):
    """Spans, log records and metrics all stuck behind a dead endpoint: flush gives up
    after the one timeout it was given (each signal used to get the whole timeout) and
    says so."""
    run = trackio_otel.init(
        project=project, endpoint=f"127.0.0.1:{free_port()}", embedded=False, gpu=None
    )
    with run.rollout(step=0) as r:
        r.generation(model="m", output="x")
    run.log({"loss": 1.0})
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="trackio_otel.sdk"):
        assert run.flush(timeout_s=2.0) is False
    elapsed = time.monotonic() - started
    assert elapsed < 4.5, elapsed  # one 2 s deadline (three signals used to take ~6 s)
    assert "Run.flush failed" in caplog.text
    run.finish(timeout_s=0.5)


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
