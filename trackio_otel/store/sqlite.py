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
import sqlite3
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Sequence
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
from trackio_otel.store.media_quota import MediaQuota

log = logging.getLogger(__name__)
BUSY_TIMEOUT_S = 30.0
LOCK_TIMEOUT_S = 30.0
SQL_IN_CHUNK = 500
IDLE_S = 1.0
"""A WAL nobody appended to for this long is truncated (given back to the disk)."""
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
DIALECT = sqlite.dialect()
"""Every statement is SQLAlchemy Core, compiled once for this dialect (docs/storage.md)."""


class _Statement:
    """One statement run for many rows, compiled once; rows reach the driver as tuples,
    because SQLAlchemy's per-row parameter handling costs more than SQLite's own insert."""

    def __init__(self, stmt: Any, columns: Sequence[str]) -> None:
        compiled = stmt.compile(dialect=DIALECT, column_keys=list(columns))
        self.sql = str(compiled)
        names = compiled.positiontup or ()
        pick = itemgetter(*names)  # a row's values, in order
        self._params = pick if len(names) > 1 else lambda row: (pick(row),)

    def run(self, db: Any, items: Iterable[Row]) -> int:
        """Rows changed (inserted or updated)."""
        params = [self._params(row) for row in items]
        if not params:
            return 0
        return db.executemany(self.sql, params).rowcount


class _Query:
    """A SELECT whose ``WHERE`` takes a list of values (``IN``), compiled once per list
    length and run on the driver: SQLAlchemy's own execution costs ~10x SQLite's query
    here (measured 230-510 µs against 23 µs), and a write runs several per request."""

    def __init__(self, build: Callable[[list[Any]], Any]) -> None:
        self._build = build
        self._compiled: dict[int, tuple[str, tuple[str, ...], dict[str, Any], Any]] = {}

    def rows(self, db: Any, values: Iterable[Any], **params: Any) -> list[Any]:
        values = list(values)
        out: list[Any] = []
        for i in range(0, len(values), SQL_IN_CHUNK):
            chunk = values[i : i + SQL_IN_CHUNK]
            sql, names, defaults, row_type = self._compile(len(chunk))
            given = {**defaults, **params, **{f"v{j}": v for j, v in enumerate(chunk)}}
            out += map(row_type._make, db.execute(sql, [given[n] for n in names]))
        return out

    def _compile(self, n: int) -> tuple[str, tuple[str, ...], dict[str, Any], Any]:
        if n not in self._compiled:
            stmt = self._build([bindparam(f"v{j}") for j in range(n)])
            compiled = stmt.compile(dialect=DIALECT)
            names = tuple(compiled.positiontup or ())
            row_type = namedtuple("Row", [c.name for c in stmt.selected_columns])
            self._compiled[n] = (str(compiled), names, compiled.params, row_type)
        return self._compiled[n]


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
    wal_path: Path = Path()
    wal_seen: tuple[int, int] = (0, 0)
    """The WAL's (size, mtime) when last looked at, and since when it is so."""
    wal_since: float = 0.0


class SQLiteStore:
    """Commits writes into ``<trackio_dir>/<project>.db``; safe to use from several
    threads and processes at once (each commit is serialised by the project's lock)."""

    def __init__(self, trackio_dir: Path | str) -> None:
        self.trackio_dir = Path(trackio_dir)
        self.media_quota = MediaQuota(self.trackio_dir / "media")  # Trackio's MEDIA_DIR
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
            tx = Tx(conn, p.lock_path.parent / "media")
            conflicts: list[Row] = []
            for table, rows in write.rows.items():
                inserted = _INSERTS[table].run(tx.db, rows)
                if table == "otel_spans" and inserted < len(rows):
                    conflicts = _span_conflicts(tx.db, rows)
            _ensure_runs(conn, p, write.runs, pending_runs)
            if write.then is not None:
                write.then(tx, conflicts)
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
            _set_aside_old_spans(conn)
            schema.metadata.create_all(conn)
            version = conn.exec_driver_sql("PRAGMA user_version").scalar() or 0
            if version < schema.TRACKIO_SCHEMA_VERSION:
                conn.exec_driver_sql(f"PRAGMA user_version = {schema.TRACKIO_SCHEMA_VERSION}")
        if self._checkpointer is None:
            self._checkpointer = threading.Thread(
                target=self._checkpoint, name="trackio-otel-checkpoint", daemon=True
            )
            self._checkpointer.start()
        return _Project(writer, reader, lock_path, wal_path=Path(f"{self.db_path(project)}-wal"))

    def _checkpoint(self) -> None:
        """Copy committed WAL pages into the database off the commit path. PASSIVE: it
        never waits for, nor blocks, a writer or a reader."""
        while not self._closed.wait(CHECKPOINT_INTERVAL_S):
            with self._lock:
                projects = list(self._projects.values())
            for p in projects:
                self._give_back_wal(p)
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

    def _give_back_wal(self, p: _Project) -> None:
        """Once no writer (of any process) has appended to the WAL for ``IDLE_S``, copy
        what is left and truncate it to nothing, under the project's lock (a writer that
        comes meanwhile waits for the lock, never for SQLite). Under load the WAL is
        reused instead: truncating it there cost throughput (see
        ``WAL_AUTOCHECKPOINT_PAGES``)."""
        try:
            st = p.wal_path.stat()
        except FileNotFoundError:
            return
        seen = (st.st_size, st.st_mtime_ns)
        now = time.monotonic()
        if st.st_size == 0 or seen != p.wal_seen:
            p.wal_seen, p.wal_since = seen, now
            return
        if now - p.wal_since < IDLE_S:
            return
        conn = p.reader.raw_connection()
        try:
            with _flock(p.lock_path, timeout_s=0):
                db = conn.driver_connection
                db.execute("PRAGMA busy_timeout = 100")  # a Trackio reader: try again later
                busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if not busy:
                p.wal_seen = (0, 0)
        except (TimeoutError, OperationalError, sqlite3.Error) as exc:
            log.debug("WAL not truncated yet: %s", exc)
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


def _set_aside_old_spans(conn: Connection) -> None:
    """A database from before span views (``otel_spans`` keyed by trace and span id, with
    no ``view``) keeps its spans, for SQL, as ``otel_spans_v1``; new spans go to a new
    ``otel_spans``. Their traces keep their rows; a trace that spans the upgrade gets
    another row for the spans that came after it."""
    columns = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(otel_spans)")}
    if columns and "view" not in columns:
        conn.exec_driver_sql("ALTER TABLE otel_spans RENAME TO otel_spans_v1")
        conn.exec_driver_sql("DROP INDEX IF EXISTS idx_otel_spans_run_start")


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
def _flock(path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Trackio's cross-process ProcessLock: an exclusive flock on ``<project>.lock``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not lock {path} within {timeout_s:.0f}s") from None
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


def _by_trace(table: Table, *columns: Any) -> _Query:
    """``columns`` (all of ``table``'s if none) of the rows whose trace id is listed."""
    return _Query(lambda ids: select(*(columns or [table])).where(table.c.trace_id.in_(ids)))


_sp, _lg, _st, _tr = schema.otel_spans, schema.otel_logs, schema.otel_trace_state, schema.traces
_genai = _lg.c.event_name.op("GLOB")(bindparam("glob"))
_SPANS = _by_trace(_sp)
_VIEWS = _by_trace(
    _sp,
    *(_sp.c[c] for c in ("trace_id", "run_id", "span_id", "parent_span_id", "name")),
    *(_sp.c[c] for c in ("start_time_unix_nano", "end_time_unix_nano", "view")),
)
_LOGS = _Query(lambda ids: select(_lg).where(_lg.c.trace_id.in_(ids), _genai))
_LOG_COUNTS = _Query(
    lambda ids: (
        select(_lg.c.trace_id, _lg.c.run_id, _lg.c.span_id, func.count().label("n"))
        .where(_lg.c.trace_id.in_(ids), _genai)
        .group_by(_lg.c.trace_id, _lg.c.run_id, _lg.c.span_id)
    )
)
_STATES = _by_trace(_st)
_SPAN_COUNTS = _Query(
    lambda ids: (
        select(_sp.c.trace_id, _sp.c.run_id, func.count().label("n"))
        .where(_sp.c.trace_id.in_(ids))
        .group_by(_sp.c.trace_id, _sp.c.run_id)
    )
)
_STEPS = _Query(lambda ids: select(_tr.c.id, _tr.c.step).where(_tr.c.id.in_(ids)))
_TRACE_SPANS = _Query(lambda ids: select(_tr.c.id, _tr.c.spans).where(_tr.c.id.in_(ids)))
_LAST_STEP = _Query(
    lambda ids: select(func.max(_tr.c.step).label("step")).where(_tr.c.run_id.in_(ids))
)
_AT_STEP = _Query(
    lambda runs: select(_tr.c.timestamp, _tr.c.metadata).where(
        _tr.c.run_id.in_(runs), _tr.c.step == bindparam("step")
    )
)
_METRIC_IDS = _Query(
    lambda ids: select(schema.metrics.c.log_id).where(schema.metrics.c.log_id.in_(ids))
)
_DIRTY = _Query(lambda limit: select(_st).where(_st.c.dirty).limit(limit[0]))


class Tx:
    """The reads and writes a ``Write`` makes inside its transaction (or in a snapshot):
    each names what it is for, so a second dialect implements this class and no more.
    Rows come back as named tuples of the columns."""

    def __init__(self, conn: Connection, media_dir: Path) -> None:
        self.db = conn.connection.driver_connection  # inside SQLAlchemy's transaction
        self._media_dir = media_dir

    def upsert(self, table: str, rows: list[Row]) -> None:
        _UPSERTS[table].run(self.db, rows)

    def spans(self, keys: Iterable[SpanKey]) -> list[Any]:
        """Whole ``otel_spans`` rows, by key."""
        return _of_keys(_SPANS, self.db, keys)

    def views(self, keys: Iterable[TraceKey]) -> dict[TraceKey, list[Any]]:
        """Per trace, its spans' (span_id, parent_span_id, name, start, end, view)."""
        out: dict[TraceKey, list[Any]] = {}
        for r in _of_keys(_VIEWS, self.db, keys):
            out.setdefault((r[0], r[1]), []).append(r[2:])
        return out

    def set_views(self, rows: list[Row]) -> None:
        """Views made again (``view`` and the span's key)."""
        _SET_VIEW.run(self.db, rows)

    def logs(self, keys: Iterable[TraceKey], event_prefix: str) -> list[Any]:
        """Whole ``otel_logs`` rows of these traces whose event name starts with the prefix."""
        return _of_keys(_LOGS, self.db, keys, glob=_glob_prefix(event_prefix))

    def log_counts(self, keys: Iterable[TraceKey], event_prefix: str) -> dict[SpanKey, int]:
        """Per span of these traces, its log records whose event name starts with the prefix."""
        found = _of_keys(_LOG_COUNTS, self.db, keys, glob=_glob_prefix(event_prefix))
        return {(r.trace_id, r.run_id, r.span_id): r.n for r in found}

    def trace_states(self, keys: Iterable[TraceKey]) -> dict[TraceKey, Any]:
        return {(r.trace_id, r.run_id): r for r in _of_keys(_STATES, self.db, keys)}

    def dirty_traces(self, limit: int) -> list[Any]:
        """Trace states whose Trackio row lags behind their spans."""
        return _DIRTY.rows(self.db, [limit])

    def span_counts(self, keys: Iterable[TraceKey]) -> dict[TraceKey, int]:
        return {(r.trace_id, r.run_id): r.n for r in _of_keys(_SPAN_COUNTS, self.db, keys)}

    def trace_steps(self, row_ids: Iterable[str]) -> dict[str, int]:
        """The step of each ``traces`` row already there."""
        return {r.id: r.step for r in _STEPS.rows(self.db, row_ids)}

    def trace_spans(self, row_ids: Iterable[str]) -> dict[str, str]:
        """The ``spans`` JSON of each ``traces`` row already there."""
        return {r.id: r.spans for r in _TRACE_SPANS.rows(self.db, row_ids)}

    def traces_at(self, run_id: str, step: int) -> list[Any]:
        """(timestamp, metadata) of the run's trace rows at this step."""
        return _AT_STEP.rows(self.db, [run_id], step=step)

    def existing_metrics(self, log_ids: Iterable[str]) -> set[str]:
        """Which of these ``metrics`` rows are there."""
        return {r.log_id for r in _METRIC_IDS.rows(self.db, log_ids)}

    def last_trace_step(self, run_id: str) -> int | None:
        return _LAST_STEP.rows(self.db, [run_id])[0].step

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


_CONTENT = _by_trace(_sp, *(_sp.c[c] for c in schema.SPAN_CONTENT))


def _span_conflicts(db: Any, rows: list[Row]) -> list[Row]:
    """Rows left out by the keyed insert whose stored span differs: same key, other span
    (a retry, or a span repeated within the batch, has the same content)."""
    key = itemgetter(*schema.SPAN_KEY)
    content = itemgetter(*schema.SPAN_CONTENT)
    stored = {key(r._asdict()): tuple(r) for r in _of_keys(_CONTENT, db, map(key, rows))}
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


def _of_keys(query: _Query, db: Any, keys: Iterable[tuple[str, ...]], **params: Any) -> list[Any]:
    """``query``'s rows whose key columns (``schema.SPAN_KEY``'s first ones, as many as a
    key has) are one of ``keys``. Selected by ``trace_id`` alone, then filtered: SQLite
    scans the whole table for a row-value ``IN`` list, and trace ids rarely repeat."""
    keys = set(keys)
    if not keys:
        return []
    columns = schema.SPAN_KEY[: len(next(iter(keys)))]
    rows = query.rows(db, {k[0] for k in keys}, **params)
    return [r for r in rows if tuple(getattr(r, c) for c in columns) in keys]
