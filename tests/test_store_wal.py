"""The store gives the WAL back once the project is idle, while it stays open."""

from __future__ import annotations

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
