"""The store gives the WAL back once the project is idle, while it stays open, and opens
databases written before span views."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from tests.test_collector_robustness import new_span, wait_until
from tests.test_trace_rows import _request
from trackio_otel import rows
from trackio_otel.store import sqlite as sqlite_store
from trackio_otel.store.sqlite import SQLiteStore
from trackio_otel.translate import spans


def test_an_idle_projects_wal_is_truncated_while_the_store_stays_open(trackio_dir, project):
    store = SQLiteStore(trackio_dir)
    wal = Path(f"{store.db_path(project)}-wal")
    try:
        for _ in range(20):
            request = _request(project, [new_span("busy") for _ in range(50)])
            rows.write(store, spans.from_request(request))
        assert wal.stat().st_size > 0
        wait_until(lambda: wal.stat().st_size == 0, "the WAL to be truncated", 10)
        assert sqlite_store.IDLE_S <= 2  # what the wait above allows for
    finally:
        store.close()


def test_a_database_from_before_span_views_keeps_its_spans_and_takes_new_ones(trackio_dir, project):
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as db:
        db.execute(
            "CREATE TABLE otel_spans (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, "
            "name TEXT NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (trace_id, span_id))"
        )
        db.execute("CREATE INDEX idx_otel_spans_run_start ON otel_spans (run_id)")
        db.execute("INSERT INTO otel_spans VALUES ('t', 's', 'old', 'r')")
        db.commit()
    store = SQLiteStore(trackio_dir)
    try:
        rows.write(store, spans.from_request(_request(project, [new_span("new")])))
    finally:
        store.close()
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as db:
        assert db.execute("SELECT name FROM otel_spans_v1").fetchall() == [("old",)]
        assert db.execute("SELECT name FROM otel_spans").fetchall() == [("new",)]
