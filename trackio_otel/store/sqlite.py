"""The SQLite store: a Trackio directory with one database per project.

Several writer processes share one database. Each prepares its rows with no lock held
(``trackio_otel.rows``) and commits a ``Write`` in one short ``BEGIN IMMEDIATE``
transaction under Trackio's own ``<project>.lock`` flock (so Trackio's writer, 10 s flock /
30 s busy limits, never times out beside us). Inside it, after the keyed inserts, the
write's own step runs against a ``Tx``: the few reads and upserts that need the latest
committed state (other writers' spans of the same trace).

Every insert is keyed (span keys, log and point uids, ``log_id``), so replaying a batch
changes nothing; a span whose key is stored with other content is handed back as a
conflict, never dropped unseen.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.exc import OperationalError

from trackio_otel.store import Row, RunRow, Unavailable, Write, schema

log = logging.getLogger(__name__)
BUSY_TIMEOUT_S = 30.0
LOCK_TIMEOUT_S = 30.0
SQL_IN_CHUNK = 500
CHECKPOINT_INTERVAL_S = 0.1
"""How often a background thread copies committed WAL pages into the database, with no
lock held. A busy collector appends ~100 MB/s to the WAL: checkpointing every second left
most of that copy to the backstop below, which runs inside a commit with the project's
lock held (measured: 4-5% lower throughput than every 0.1 s)."""
WAL_AUTOCHECKPOINT_PAGES = 65_536
"""256 MB at 4 KiB pages: when a commit leaves more WAL than this, the committing writer
checkpoints right away, with the project's lock held. SQLite only restarts the WAL from
its beginning when a write starts on a fully copied WAL, which under load only this
in-commit checkpoint achieves (without it the WAL grew by ~150 MB/s). Past the threshold,
every commit would checkpoint, so it is set high: it then runs about once per 256 MB,
finds the background thread has copied nearly everything, and the WAL file (at most
~290 MB under load) is reused. Measured with scattered trace ids: 8,192 pages 10-14%
slower, 131,072 no faster, truncating the file at each restart (``journal_size_limit``
64 MB) gave most of the gain back. At low rates the WAL restarts after each background
checkpoint and stays small."""


def _span_key(table: Table) -> list[Any]:
    return [table.c[c] for c in schema.SPAN_KEY]


# --- Statements -----------------------------------------------------------------------------
class _Statement:
    """One statement run for many rows, compiled once; rows reach the driver as tuples,
    because SQLAlchemy's per-row parameter handling costs more than SQLite's own insert."""

    def __init__(self, stmt: Any, columns: Sequence[str]) -> None:
        compiled = stmt.compile(dialect=sqlite.dialect(), column_keys=list(columns))
        self.sql = str(compiled)
        self._params = itemgetter(*(compiled.positiontup or ()))  # a row's values, in order

    def run(self, conn: Connection, items: Iterable[Row]) -> int:
        """Rows changed (inserted or updated)."""
        params = [self._params(row) for row in items]
        if not params:
            return 0
        return conn.exec_driver_sql(self.sql, params).rowcount


def _ignore(table: Table, columns: Sequence[str] | None = None) -> _Statement:
    """Keyed insert: a row already there (a replayed record) is left as it is."""
    return _Statement(insert(table).on_conflict_do_nothing(), columns or table.columns.keys())


def _upsert(
    table: Table, columns: Sequence[str], key: list[str], update: Sequence[str], where: Any = None
) -> _Statement:
    """Insert, or on ``key`` conflict overwrite ``update`` (``where``: a partial index's)."""
    stmt = insert(table)
    return _Statement(
        stmt.on_conflict_do_update(
            index_elements=key, index_where=where, set_={c: stmt.excluded[c] for c in update}
        ),
        columns,
    )


_SCALARS = ["run_id", "run_name", "timestamp", "metrics", "log_id"]
_METRICS = _ignore(schema.metrics, [*_SCALARS, "step"])
_INSERTS = {
    "otel_resources": _ignore(schema.otel_resources),
    "otel_spans": _ignore(schema.otel_spans),
    "otel_logs": _ignore(schema.otel_logs),
    "otel_metric_points": _ignore(schema.otel_metric_points),
    "metrics": _METRICS,
    "system_metrics": _ignore(schema.system_metrics, _SCALARS),
}
"""Keyed inserts, by table: a row already there (a replayed record) is left as it is."""
_SET_VIEW = _Statement(
    update(schema.otel_spans)
    .where(*(c == bindparam(f"key_{c.name}") for c in _span_key(schema.otel_spans)))
    .values(view=bindparam("view")),
    ["view", *(f"key_{c}" for c in schema.SPAN_KEY)],
)
_UPSERTS = {
    "traces": _upsert(
        schema.traces,
        schema.traces.columns.keys(),
        key=["id"],
        update=[
            *("run_id", "run_name", "timestamp", "step", "key"),
            *("messages", "metadata", "search_text", "spans"),
        ],
    ),
    "metrics": _upsert(  # rows rewritten as more of what they sum up arrives, by log_id
        schema.metrics,
        [*_SCALARS, "step"],
        key=["log_id"],
        update=["run_name", "timestamp", "step", "metrics"],
        where=schema.metrics.c.log_id.isnot(None),  # Trackio's unique index on it is partial
    ),
    "otel_trace_state": _upsert(
        schema.otel_trace_state,
        schema.otel_trace_state.columns.keys(),
        key=["run_id", "trace_id"],
        update=["run_name", "spans", "built", "root", "dirty"],
    ),
}


# --- The store ------------------------------------------------------------------------------
@dataclass
class _Project:
    writer: Engine
    reader: Engine
    lock_path: Path
    runs: dict[str, str] = field(default_factory=dict)
    """run_id → hash of the config row written for it (rows this process already wrote)."""
    uncheckpointed: bool = False
    """Committed since the last background checkpoint (an idle project costs nothing)."""


class SQLiteStore:
    """Commits writes into ``<trackio_dir>/<project>.db``; safe to use from several
    threads and processes at once (each commit is serialised by the project's lock)."""

    def __init__(self, trackio_dir: Path | str) -> None:
        self.trackio_dir = Path(trackio_dir)
        self._projects: dict[str, _Project] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._checkpointer: threading.Thread | None = None

    def db_path(self, project: str) -> Path:
        return self.trackio_dir / f"{project}.db"

    def projects(self) -> list[str]:
        """The projects this store has opened."""
        with self._lock:
            return list(self._projects)

    @contextmanager
    def snapshot(self, project: str) -> Iterator[Tx]:
        """A read-only view of what is committed, with no lock held."""
        p = self._project_or_unavailable(project)
        with _unavailable(), p.reader.begin() as conn:
            yield Tx(conn, p.lock_path.parent / "media")

    def commit(self, write: Write) -> list[Row]:
        """One transaction under the project's lock; returns the span rows not stored
        because their key holds a span of other content (the stored one is kept)."""
        p = self._project_or_unavailable(write.project)
        pending_runs: dict[str, str] = {}
        with _unavailable(), _flock(p.lock_path), p.writer.begin() as conn:
            conflicts: list[Row] = []
            for table, rows in write.rows.items():
                inserted = _INSERTS[table].run(conn, rows)
                if table == "otel_spans" and inserted < len(rows):
                    conflicts = _span_conflicts(conn, rows)
            _ensure_runs(conn, p, write.runs, pending_runs)
            if write.then is not None:
                write.then(Tx(conn, p.lock_path.parent / "media"), conflicts)
        p.runs.update(pending_runs)  # only once committed
        p.uncheckpointed = True
        return conflicts

    def close(self) -> None:
        self._closed.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        with self._lock:
            for p in self._projects.values():
                p.writer.dispose()
                p.reader.dispose()
            self._projects.clear()

    def _project_or_unavailable(self, project: str) -> _Project:
        with _unavailable():
            return self._project(project)

    def _project(self, project: str) -> _Project:
        with self._lock:
            if project not in self._projects:
                self._projects[project] = self._open(project)
            return self._projects[project]

    def _open(self, project: str) -> _Project:
        self.trackio_dir.mkdir(parents=True, exist_ok=True)
        writer, reader = (self._engine(project, begin) for begin in ("BEGIN IMMEDIATE", "BEGIN"))
        lock_path = self.trackio_dir / f"{project}.lock"
        with _flock(lock_path), writer.begin() as conn:
            schema.metadata.create_all(conn)
            version = conn.exec_driver_sql("PRAGMA user_version").scalar() or 0
            if version < schema.TRACKIO_SCHEMA_VERSION:
                conn.exec_driver_sql(f"PRAGMA user_version = {schema.TRACKIO_SCHEMA_VERSION}")
        if self._checkpointer is None:
            self._checkpointer = threading.Thread(
                target=self._checkpoint, name="trackio-otel-checkpoint", daemon=True
            )
            self._checkpointer.start()
        return _Project(writer, reader, lock_path)

    def _checkpoint(self) -> None:
        """Copy committed WAL pages into the database off the commit path. PASSIVE: it
        never waits for, nor blocks, a writer or a reader."""
        while not self._closed.wait(CHECKPOINT_INTERVAL_S):
            with self._lock:
                projects = list(self._projects.values())
            for p in projects:
                if not p.uncheckpointed:
                    continue
                p.uncheckpointed = False  # before: a commit from now on is seen next round
                conn = p.reader.raw_connection()
                try:
                    _, frames, copied = conn.driver_connection.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                    if copied < frames:  # a writer appended meanwhile: go on next round
                        p.uncheckpointed = True
                except Exception as exc:  # the next round retries; commits are unaffected
                    p.uncheckpointed = True
                    log.debug("checkpoint failed: %s", exc)
                finally:
                    conn.close()

    def _engine(self, project: str, begin: str) -> Engine:
        engine = create_engine(
            f"sqlite:///{self.db_path(project)}",
            connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        event.listen(engine, "connect", _configure_connection)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
        return engine


def _configure_connection(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    cur = dbapi_conn.cursor()
    for pragma in (
        "journal_mode = WAL",
        "synchronous = NORMAL",
        f"busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}",
        "temp_store = MEMORY",
        "cache_size = -4000",
        f"wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}",
    ):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


@contextmanager
def _unavailable() -> Iterator[None]:
    """A locked, full or failing database is the caller's to retry; other errors are bugs."""
    try:
        yield
    except (OperationalError, OSError) as exc:  # OSError: the lock's TimeoutError, disk faults
        raise Unavailable(str(exc)) from exc


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Trackio's cross-process ProcessLock: an exclusive flock on ``<project>.lock``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"could not lock {path} within {LOCK_TIMEOUT_S:.0f}s"
                    ) from None
                time.sleep(0.002)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- Inside a transaction -------------------------------------------------------------------
TraceKey = tuple[str, str]
"""(trace_id, run_id), the order of the keys' columns."""
SpanKey = tuple[str, str, str]
"""(trace_id, run_id, span_id)."""
_VIEW_COLUMNS = ("span_id", "parent_span_id", "name", "start_time_unix_nano")


class Tx:
    """The reads and writes a ``Write`` makes inside its transaction (or in a snapshot):
    each names what it is for, so a second dialect implements this class and no more."""

    def __init__(self, conn: Connection, media_dir: Path) -> None:
        self._conn, self._media_dir = conn, media_dir

    def upsert(self, table: str, rows: list[Row]) -> None:
        _UPSERTS[table].run(self._conn, rows)

    def spans(self, keys: Iterable[SpanKey]) -> list[Any]:
        """Whole ``otel_spans`` rows, by key."""
        sp = schema.otel_spans
        return _select_keys(self._conn, select(sp), sp, keys)

    def views(self, keys: Iterable[TraceKey]) -> dict[TraceKey, list[Any]]:
        """Per trace, its spans' (span_id, parent_span_id, name, start, end, view)."""
        sp = schema.otel_spans
        query = select(
            sp.c.trace_id,
            sp.c.run_id,
            *(sp.c[c] for c in _VIEW_COLUMNS),
            sp.c.end_time_unix_nano,
            sp.c.view,
        )
        out: dict[TraceKey, list[Any]] = {}
        for r in _select_keys(self._conn, query, sp, keys):
            out.setdefault((r[0], r[1]), []).append(r[2:])
        return out

    def set_views(self, rows: list[Row]) -> None:
        """Views made again (``view`` and the span's key)."""
        _SET_VIEW.run(self._conn, rows)

    def logs(self, keys: Iterable[TraceKey], event_prefix: str) -> list[Any]:
        """Whole ``otel_logs`` rows of these traces whose event name starts with the prefix."""
        lg = schema.otel_logs
        query = select(lg).where(lg.c.event_name.op("GLOB")(_glob_prefix(event_prefix)))
        return _select_keys(self._conn, query, lg, keys)

    def log_counts(self, keys: Iterable[TraceKey], event_prefix: str) -> dict[SpanKey, int]:
        """Per span of these traces, its log records whose event name starts with the prefix."""
        lg = schema.otel_logs
        query = (
            select(lg.c.trace_id, lg.c.run_id, lg.c.span_id, func.count())
            .where(lg.c.event_name.op("GLOB")(_glob_prefix(event_prefix)))
            .group_by(lg.c.trace_id, lg.c.run_id, lg.c.span_id)
        )
        return {(r[0], r[1], r[2]): r[3] for r in _select_keys(self._conn, query, lg, keys)}

    def trace_states(self, keys: Iterable[TraceKey]) -> dict[TraceKey, Any]:
        st = schema.otel_trace_state
        rows = _select_keys(self._conn, select(st), st, keys)
        return {(r.trace_id, r.run_id): r for r in rows}

    def dirty_traces(self, limit: int) -> list[Any]:
        """Trace states whose Trackio row lags behind their spans."""
        st = schema.otel_trace_state
        return list(self._conn.execute(select(st).where(st.c.dirty).limit(limit)))

    def span_counts(self, keys: Iterable[TraceKey]) -> dict[TraceKey, int]:
        sp = schema.otel_spans
        query = select(sp.c.trace_id, sp.c.run_id, func.count()).group_by(
            sp.c.trace_id, sp.c.run_id
        )
        rows = _select_keys(self._conn, query, sp, keys)
        return {(r[0], r[1]): r[2] for r in rows}

    def trace_steps(self, row_ids: Iterable[str]) -> dict[str, int]:
        """The step of each ``traces`` row already there."""
        tr = schema.traces
        return dict(_select_in(self._conn, select(tr.c.id, tr.c.step), tr.c.id, row_ids))

    def last_trace_step(self, run_id: str) -> int | None:
        tr = schema.traces
        return self._conn.execute(select(func.max(tr.c.step)).where(tr.c.run_id == run_id)).scalar()

    def write_media(self, files: Iterable[tuple[str, bytes]]) -> None:
        """Content-addressed names: a file already there (a retried export) is left as it
        is. Written before the rows that reference them commit."""
        for path, data in files:
            target = self._media_dir / path
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            partial.write_bytes(data)
            os.replace(partial, target)


def _glob_prefix(prefix: str) -> str:
    """GLOB, not LIKE: case-sensitive, as ``str.startswith``."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in prefix) + "*"


def _span_conflicts(conn: Connection, rows: list[Row]) -> list[Row]:
    """Rows left out by the keyed insert whose stored span differs: same key, other span
    (a retry, or a span repeated within the batch, has the same content)."""
    sp = schema.otel_spans
    key = itemgetter(*schema.SPAN_KEY)
    content = itemgetter(*schema.SPAN_CONTENT)
    query = select(*(sp.c[c] for c in schema.SPAN_CONTENT))
    stored = {
        key(r._mapping): tuple(r) for r in _select_keys(conn, query, sp, {key(row) for row in rows})
    }
    return [row for row in rows if content(row) != stored[key(row)]]


def _ensure_runs(
    conn: Connection, p: _Project, runs: list[RunRow], pending: dict[str, str]
) -> None:
    """Every run gets its ``configs`` row, kept as the run's config changes (keyed, so a
    no-op for runs already there)."""
    for run in runs:
        config = {**run.config, "_Group": run.group}
        config_hash = json.dumps(config, sort_keys=True, default=str)
        if p.runs.get(run.run_id) == config_hash:
            continue
        existing = conn.execute(
            select(schema.configs.c.config, schema.configs.c.created_at).where(
                schema.configs.c.run_id == run.run_id
            )
        ).first()
        if existing is None or _user_config(existing.config) != config:
            stored = json.loads(existing.config) if existing else {}
            row_created = stored.get("_Created") if isinstance(stored, dict) else None
            full = {
                **run.config,
                "_Username": None,
                "_Created": row_created or run.created,
                "_Group": run.group,
            }
            stmt = insert(schema.configs).values(
                run_id=run.run_id,
                run_name=run.run_name,
                config=json.dumps(full, separators=(",", ":"), ensure_ascii=False),
                created_at=existing.created_at if existing else run.created,
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["run_id"],
                    set_={"config": stmt.excluded.config, "run_name": stmt.excluded.run_name},
                )
            )
        pending[run.run_id] = config_hash


def _user_config(raw: str | bytes) -> dict[str, Any]:
    stored = json.loads(raw)  # Trackio writes BLOBs (orjson bytes), we write TEXT
    if not isinstance(stored, dict):
        return {}
    return {k: v for k, v in stored.items() if not k.startswith("_")} | {
        "_Group": stored.get("_Group")
    }


def _select_keys(
    conn: Connection, query: Any, table: Table, keys: Iterable[tuple[str, ...]]
) -> list[Any]:
    """``query``'s rows whose key columns (``schema.SPAN_KEY``'s first ones, as many as a
    key has) are one of ``keys``. Selected by ``trace_id`` alone, then filtered: SQLite
    scans the whole table for a row-value ``IN`` list, and trace ids rarely repeat."""
    keys = set(keys)
    if not keys:
        return []
    columns = schema.SPAN_KEY[: len(next(iter(keys)))]
    rows = _select_in(conn, query, table.c.trace_id, {k[0] for k in keys})
    return [r for r in rows if tuple(r._mapping[table.c[c]] for c in columns) in keys]


def _select_in(conn: Connection, query: Any, column: Any, values: Iterable[Any]) -> list[Any]:
    """``query`` where ``column`` is one of ``values``, in chunks SQLite accepts."""
    values = list(values)
    out: list[Any] = []
    for i in range(0, len(values), SQL_IN_CHUNK):
        out += conn.execute(query.where(column.in_(values[i : i + SQL_IN_CHUNK]))).all()
    return out
