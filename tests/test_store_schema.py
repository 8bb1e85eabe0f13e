"""The store writes Trackio's schema exactly: same columns, types, defaults and indexes as a
database Trackio creates itself, and Trackio's own migration finds nothing to change."""

import re
import sqlite3

import pytest
from trackio.sqlite_storage import SQLiteStorage

from tests.conftest import load_fixture
from trackio_otel.store.sqlite import SQLiteStore
from trackio_otel.translate import spans

TRACKIO_TABLES = (
    "metrics",
    "configs",
    "system_metrics",
    "traces",
    "project_metadata",
    "pending_uploads",
    "alerts",
)


def shape(db: sqlite3.Connection, table: str) -> tuple:
    """Columns (name, type, not null, default, primary key) and every index with what it
    does: its key columns (name, descending, collation), unique, and a partial index's
    WHERE (a unique index on ``log_id`` without Trackio's ``WHERE log_id IS NOT NULL``
    would refuse Trackio's own rows that have none)."""
    columns = [
        (r[1], r[2].upper(), r[3], r[4], r[5]) for r in db.execute(f"PRAGMA table_info({table})")
    ]
    indexes = sorted(
        (r[1], _key_columns(db, r[1]), r[2], _where(db, r[1]))
        for r in db.execute(f"PRAGMA index_list({table})")
        if not r[1].startswith("sqlite_autoindex")
    )
    return columns, indexes


def _key_columns(db: sqlite3.Connection, index: str) -> tuple:
    return tuple(
        (r[2], r[3], r[4]) for r in db.execute(f"PRAGMA index_xinfo({index})") if r[5]
    )  # r[5]: a key column, not the rowid SQLite appends


def _where(db: sqlite3.Connection, index: str) -> str | None:
    """A partial index's condition, normalised (case, whitespace, quotes); None if whole."""
    (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (index,)).fetchone()
    parts = re.split(r"\bWHERE\b", sql, maxsplit=1, flags=re.IGNORECASE)
    if len(parts) == 1:
        return None
    return " ".join(parts[1].replace('"', "").split()).lower()


@pytest.fixture
def ours_and_theirs(trackio_dir, project):
    SQLiteStorage.init_db(f"{project}-native")
    traces, _ = load_fixture("new_span_only", project)
    SQLiteStore(trackio_dir).write(spans.from_request(traces))
    ours = sqlite3.connect(trackio_dir / f"{project}.db")
    theirs = sqlite3.connect(trackio_dir / f"{project}-native.db")
    yield ours, theirs
    ours.close()
    theirs.close()


@pytest.mark.parametrize("table", TRACKIO_TABLES)
def test_table_matches_trackio(ours_and_theirs, table):
    ours, theirs = ours_and_theirs
    assert shape(ours, table) == shape(theirs, table)


def test_trackio_migration_changes_nothing_of_ours(ours_and_theirs, project):
    ours, _ = ours_and_theirs
    assert ours.execute("PRAGMA user_version").fetchone()[0] == 2
    assert ours.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    before = {t: shape(ours, t) for t in TRACKIO_TABLES}
    rows = ours.execute("SELECT id, messages, spans FROM traces ORDER BY id").fetchall()
    SQLiteStorage.init_db(project)  # what trackio.init / the dashboard run on every db
    assert {t: shape(ours, t) for t in TRACKIO_TABLES} == before
    assert ours.execute("SELECT id, messages, spans FROM traces ORDER BY id").fetchall() == rows
    assert ours.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
