"""The SQLite store: a Trackio directory with one database per project.

A write has two phases so that several writer processes can share one database:

1. *prepare*, with no lock held: build the raw rows and assemble every touched trace from
   a read snapshot of what is stored for it, noting how many spans and GenAI events that
   was and the step of its row;
2. *commit*: one short ``BEGIN IMMEDIATE`` transaction under Trackio's own
   ``<project>.lock`` flock (so Trackio's writer, 10 s flock / 30 s busy limits, never
   times out beside us). A trace whose stored spans or events changed since the snapshot
   (another writer added some) is assembled again inside the transaction; the rest is
   inserted, with the run and metric rows.

Every insert is keyed (span ids, log and point uids, ``log_id``), so replaying a batch
changes nothing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, func, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import Insert, insert
from sqlalchemy.exc import OperationalError

from trackio_otel.store import Unavailable, rows, schema
from trackio_otel.store.media_quota import MediaQuota
from trackio_otel.translate import pdata
from trackio_otel.translate.conventions.media import MediaFile
from trackio_otel.translate.identity import digest
from trackio_otel.translate.model import Batch, Log, Run, Span
from trackio_otel.translate.trace import AssembledTrace, assemble, is_training_step, with_media

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
GENAI_EVENTS = "gen_ai."
"""Log events that are part of a trace's conversation (``gen_ai.user.message``, ...); other
logs of a trace are kept in ``otel_logs`` but do not change its Trackio row."""
_DATA_URL = re.compile(r'"data:', re.IGNORECASE)
"""How every string ``with_media`` may turn into a file starts, once JSON-encoded."""


# --- Statements -----------------------------------------------------------------------------
class _Insert:
    """One INSERT, compiled once; rows reach the driver as tuples, because SQLAlchemy's
    per-row parameter handling costs more than SQLite's own insert."""

    def __init__(self, stmt: Insert, columns: Sequence[str]) -> None:
        compiled = stmt.compile(dialect=sqlite.dialect(), column_keys=list(columns))
        self.sql = str(compiled)
        self._params = itemgetter(*(compiled.positiontup or ()))  # a row's values, in order

    def run(self, conn: Connection, items: Iterable[dict[str, Any]]) -> None:
        params = [self._params(row) for row in items]
        if params:
            conn.exec_driver_sql(self.sql, params)


def _ignore(table: Table, columns: Sequence[str] | None = None) -> _Insert:
    """Keyed insert: a row already there (a replayed record) is left as it is."""
    return _Insert(insert(table).on_conflict_do_nothing(), columns or table.columns.keys())


def _upsert(
    table: Table, columns: Sequence[str], key: str, update: Sequence[str], where: Any = None
) -> _Insert:
    """Insert, or on ``key`` conflict overwrite ``update`` (``where``: a partial index's)."""
    stmt = insert(table)
    return _Insert(
        stmt.on_conflict_do_update(
            index_elements=[key], index_where=where, set_={c: stmt.excluded[c] for c in update}
        ),
        columns,
    )


_SCALARS = ["run_id", "run_name", "timestamp", "metrics", "log_id"]
_RESOURCES = _ignore(schema.otel_resources)
_SPANS = _ignore(schema.otel_spans)
_LOGS = _ignore(schema.otel_logs)
_POINTS = _ignore(schema.otel_metric_points)
_METRICS = _ignore(schema.metrics, [*_SCALARS, "step"])
_SYSTEM_METRICS = _ignore(schema.system_metrics, _SCALARS)
_TRACES = _upsert(
    schema.traces,
    schema.traces.columns.keys(),
    key="id",
    update=[
        *("run_id", "run_name", "timestamp", "step", "key"),
        *("messages", "metadata", "search_text", "spans"),
    ],
)
_ROLLOUTS = _upsert(  # a late span may add a reward or move the step: rewrite, keyed by trace
    schema.metrics,
    [*_SCALARS, "step"],
    key="log_id",
    update=["run_name", "timestamp", "step", "metrics"],
    where=schema.metrics.c.log_id.isnot(None),  # Trackio's unique index on it is partial
)


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


@dataclass(slots=True)
class _Stored:
    """What a snapshot held for one trace: the assembly's inputs, and its step if any."""

    spans: int = 0
    logs: int = 0
    step: int | None = None


@dataclass(slots=True)
class _Trace:
    assembled: AssembledTrace
    row: dict[str, Any]
    """The ``traces`` row less its step, which the commit assigns."""
    has_media: bool


@dataclass
class Prepared:
    """A project's share of a batch, computed with no lock held."""

    project: _Project
    batch: Batch
    raw: list[tuple[_Insert, list[dict[str, Any]]]]
    touched: set[str]
    seen: dict[str, _Stored]
    traces: dict[str, _Trace]


class SQLiteStore:
    """Writes batches into ``<trackio_dir>/<project>.db``; safe to use from several
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

    def write(self, batch: Batch) -> None:
        """Commit the whole batch; raises (and commits nothing for that project) on failure."""
        for prepared in self.prepare(batch):
            self.commit(prepared)

    def prepare(self, batch: Batch) -> list[Prepared]:
        """Phase 1, one per project: rows and assembled traces, with no lock held."""
        with _unavailable():
            return [
                _prepare(self._project(name), part) for name, part in batch.by_project().items()
            ]

    def commit(self, prepared: Prepared) -> None:
        """Phase 2: one transaction under the project's lock."""
        p = prepared.project
        pending_runs: dict[str, str] = {}
        with _unavailable(), _flock(p.lock_path), p.writer.begin() as conn:
            _commit(conn, p, prepared, pending_runs)
        p.runs.update(pending_runs)  # only once committed
        p.uncheckpointed = True

    def close(self) -> None:
        self._closed.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        with self._lock:
            for p in self._projects.values():
                p.writer.dispose()
                p.reader.dispose()
            self._projects.clear()

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


# --- Phase 1: prepare, no lock held ---------------------------------------------------------
def _prepare(p: _Project, batch: Batch) -> Prepared:
    raw = [
        (_RESOURCES, [rows.resource_row(r) for r in batch.resources.values()]),
        (_SPANS, [rows.span_row(s) for s in batch.spans]),
        (_LOGS, [rows.log_row(log) for log in batch.logs]),
        (_POINTS, [rows.point_row(pt) for pt in batch.points]),
    ]
    genai_logs = [
        log
        for log in batch.logs
        if log.trace_id and log.span_id and log.event_name.startswith(GENAI_EVENTS)
    ]
    touched = {s.trace_id for s in batch.spans} | {log.trace_id for log in genai_logs}
    if not touched:
        return Prepared(p, batch, raw, touched, {}, {})
    with p.reader.begin() as conn:  # one snapshot for the counts and the rows they count
        seen = _stored(conn, touched)
        stored_spans = _load_spans(conn, batch, [t for t in touched if seen[t].spans])
        stored_logs = _load_logs(conn, batch, [t for t in touched if seen[t].logs])
    new_spans: dict[str, list[Span]] = defaultdict(list)
    for s in batch.spans:
        new_spans[s.trace_id].append(s)
    new_logs: dict[str, list[Log]] = defaultdict(list)
    for log in genai_logs:
        new_logs[log.trace_id].append(log)
    traces = {}
    for trace_id in touched:
        # What is stored wins over a replayed record with the same key, as INSERT OR IGNORE does.
        spans = _union(new_spans[trace_id], stored_spans[trace_id], lambda s: s.span_id)
        logs = _union(new_logs[trace_id], stored_logs[trace_id], lambda log: log.uid)
        if trace := _trace(spans, logs):
            traces[trace_id] = trace
    return Prepared(p, batch, raw, touched, seen, traces)


def _union(new: list[Any], stored: list[Any], key: Any) -> list[Any]:
    if not stored:
        return new
    return list({**{key(r): r for r in new}, **{key(r): r for r in stored}}.values())


def _trace(spans: list[Span], logs: list[Log]) -> _Trace | None:
    """Assemble one trace, or None while it has no span yet (only log events) or is only a
    training step (its timing lands as step metrics; thousands of steps would bury the
    conversations on Trackio's Traces page)."""
    if not spans or is_training_step(spans):
        return None
    a = assemble(spans, logs)
    row = rows.trace_row(a, step=0)
    return _Trace(a, row, bool(_DATA_URL.search(row["messages"]) or _DATA_URL.search(row["spans"])))


def _stored(conn: Connection, trace_ids: set[str]) -> dict[str, _Stored]:
    """Per trace: stored spans, stored GenAI log events and the step of its row."""
    out = {t: _Stored() for t in trace_ids}
    sp, lg, tr = schema.otel_spans, schema.otel_logs, schema.traces
    count = func.count()
    for r in _select_in(
        conn, select(sp.c.trace_id, count).group_by(sp.c.trace_id), sp.c.trace_id, trace_ids
    ):
        out[r[0]].spans = r[1]
    gen_ai = select(lg.c.trace_id, count).where(_is_genai_event(lg.c.event_name))
    for r in _select_in(conn, gen_ai.group_by(lg.c.trace_id), lg.c.trace_id, trace_ids):
        out[r[0]].logs = r[1]
    for r in _select_in(conn, select(tr.c.id, tr.c.step), tr.c.id, trace_ids):
        out[r[0]].step = r[1]
    return out


# --- Phase 2: commit, under the lock --------------------------------------------------------
def _commit(conn: Connection, p: _Project, prep: Prepared, pending_runs: dict[str, str]) -> None:
    now = _stored(conn, prep.touched) if prep.touched else {}
    for statement, items in prep.raw:
        statement.run(conn, items)
    _ensure_runs(conn, p, prep.batch, pending_runs)
    _METRICS.run(conn, (rows.scalars_row(s) for s in prep.batch.scalars if s.step is not None))
    _SYSTEM_METRICS.run(conn, (rows.scalars_row(s) for s in prep.batch.scalars if s.step is None))
    stale = [t for t in prep.touched if now[t] != prep.seen[t]]
    if stale:  # another writer added to these traces since the snapshot: assemble again
        stored_spans = _load_spans(conn, prep.batch, stale)
        stored_logs = _load_logs(conn, prep.batch, stale)
        for trace_id in stale:
            prep.traces.pop(trace_id, None)
            if trace := _trace(stored_spans[trace_id], stored_logs[trace_id]):
                prep.traces[trace_id] = trace
    _write_traces(conn, prep.traces.values(), now, p.lock_path.parent / "media")  # Trackio's


def _write_traces(
    conn: Connection, traces: Iterable[_Trace], now: dict[str, _Stored], media_dir: Path
) -> None:
    t = schema.traces
    next_step: dict[str, int] = {}
    trace_rows, rollouts = [], []
    files: dict[str, MediaFile] = {}
    for trace in sorted(traces, key=lambda x: (x.assembled.start_ns, x.assembled.trace_id)):
        a = trace.assembled
        step = a.step if a.step is not None else now[a.trace_id].step
        if step is None:  # the per-run rule: the run's next trace number
            if a.run.run_id not in next_step:
                top = conn.execute(
                    select(func.max(t.c.step)).where(t.c.run_id == a.run.run_id)
                ).scalar()
                next_step[a.run.run_id] = -1 if top is None else top
            next_step[a.run.run_id] += 1
            step = next_step[a.run.run_id]
        if trace.has_media:  # rare: the files' names need the step
            trace_rows.append(rows.trace_row(with_media(a, step, files), step))
        else:
            trace_rows.append({**trace.row, "step": step})
        if a.scalars:
            rollouts.append(rows.rollout_row(a, step))
    _write_media(media_dir, files.values())  # before the rows that reference them commit
    _TRACES.run(conn, trace_rows)
    _ROLLOUTS.run(conn, rollouts)


def _ensure_runs(conn: Connection, p: _Project, batch: Batch, pending: dict[str, str]) -> None:
    """Every run gets a config row and a first ``metrics`` row: Trackio lists runs from
    ``metrics`` only. Both are keyed, so this is a no-op for runs already there."""
    first_seen: dict[str, tuple[Run, int]] = {}
    for record in [*batch.spans, *batch.logs, *batch.points, *batch.scalars]:
        t = getattr(record, "start_ns", 0) or getattr(record, "time_ns", 0) or pdata.now_nano()
        run = record.run
        if run.run_id not in first_seen or t < first_seen[run.run_id][1]:
            first_seen[run.run_id] = (run, t)
    for run_id, (run, t) in first_seen.items():
        config = {**run.config, "_Group": run.group}
        config_hash = digest(pdata.dumps(config))
        if p.runs.get(run_id) == config_hash:
            continue
        created = pdata.iso(t)
        _METRICS.run(conn, [rows.run_start_row(run, created)])
        existing = conn.execute(
            select(schema.configs.c.config, schema.configs.c.created_at).where(
                schema.configs.c.run_id == run_id
            )
        ).first()
        if existing is None or _user_config(existing.config) != config:
            stored = json.loads(existing.config) if existing else {}
            row_created = stored.get("_Created") if isinstance(stored, dict) else None
            full = {
                **run.config,
                "_Username": None,
                "_Created": row_created or created,
                "_Group": run.group,
            }
            stmt = insert(schema.configs).values(
                **rows.run_cols(run),
                config=pdata.dumps(full),
                created_at=existing.created_at if existing else created,
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["run_id"],
                    set_={"config": stmt.excluded.config, "run_name": stmt.excluded.run_name},
                )
            )
        pending[run_id] = config_hash


def _user_config(raw: str | bytes) -> dict[str, Any]:
    stored = json.loads(raw)  # Trackio writes BLOBs (orjson bytes), we write TEXT
    if not isinstance(stored, dict):
        return {}
    return {k: v for k, v in stored.items() if not k.startswith("_")} | {
        "_Group": stored.get("_Group")
    }


def _write_media(media_dir: Path, files: Iterable[MediaFile]) -> None:
    """Content-addressed names: a file already there (a retried export) is left as it is."""
    for f in files:
        target = media_dir / f.path
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(f.data)
        os.replace(partial, target)


# --- Reading stored records back ------------------------------------------------------------
def _select_in(
    conn: Connection, query: Any, column: Any, values: Sequence[str] | set[str]
) -> Iterator[Any]:
    values = list(values)
    for i in range(0, len(values), SQL_IN_CHUNK):
        yield from conn.execute(query.where(column.in_(values[i : i + SQL_IN_CHUNK])))


def _load_spans(conn: Connection, batch: Batch, trace_ids: list[str]) -> dict[str, list[Span]]:
    out: dict[str, list[Span]] = defaultdict(list)
    if not trace_ids:
        return out
    runs = _RunCache(batch)
    for r in _select_in(conn, select(schema.otel_spans), schema.otel_spans.c.trace_id, trace_ids):
        out[r.trace_id].append(
            Span(
                run=runs.get(r.run_id, r.run_name),
                resource_id=r.resource_id,
                trace_id=r.trace_id,
                span_id=r.span_id,
                parent_span_id=r.parent_span_id,
                name=r.name,
                kind=r.kind,
                start_ns=r.start_time_unix_nano,
                end_ns=r.end_time_unix_nano,
                status_code=r.status_code,
                status_message=r.status_message or "",
                attributes=json.loads(r.attributes),
                events=json.loads(r.events),
                links=json.loads(r.links),
                scope_name=r.scope_name or "",
                scope_version=r.scope_version or "",
                trace_state=r.trace_state or "",
            )
        )
    return out


def _load_logs(conn: Connection, batch: Batch, trace_ids: list[str]) -> dict[str, list[Log]]:
    """GenAI log events of these traces, stored now or earlier (they may precede their span)."""
    out: dict[str, list[Log]] = defaultdict(list)
    if not trace_ids:
        return out
    lg = schema.otel_logs
    query = select(lg).where(_is_genai_event(lg.c.event_name))
    runs = _RunCache(batch)
    for r in _select_in(conn, query, lg.c.trace_id, trace_ids):
        out[r.trace_id].append(
            Log(
                uid=r.log_uid,
                run=runs.get(r.run_id, r.run_name),
                resource_id=r.resource_id,
                time_ns=r.time_unix_nano,
                observed_ns=r.observed_time_unix_nano,
                severity_number=r.severity_number or 0,
                severity_text=r.severity_text or "",
                event_name=r.event_name or "",
                body=json.loads(r.body) if r.body else None,
                attributes=json.loads(r.attributes),
                trace_id=r.trace_id,
                span_id=r.span_id,
                scope_name=r.scope_name or "",
                scope_version=r.scope_version or "",
            )
        )
    return out


def _is_genai_event(event_name: Any) -> Any:
    """SQL for ``event_name.startswith(GENAI_EVENTS)``: GLOB is case-sensitive, LIKE is not."""
    return event_name.op("GLOB")(GENAI_EVENTS + "*")


class _RunCache:
    """Runs of rows read back: the batch's own Run objects, else rebuilt from the row."""

    def __init__(self, batch: Batch) -> None:
        self._runs = {r.run.run_id: r.run for r in [*batch.spans, *batch.logs]}
        self._project = next(iter(self._runs.values())).project if self._runs else ""

    def get(self, run_id: str, run_name: str) -> Run:
        if run_id not in self._runs:
            self._runs[run_id] = Run(self._project, run_id, run_name)
        return self._runs[run_id]
