"""The SQLite store: a Trackio directory with one database per project.

Each ``write`` is one short ``BEGIN IMMEDIATE`` transaction per project, taken under
Trackio's own ``<project>.lock`` flock, so Trackio's writer (10 s flock / 30 s busy
limits) never times out beside us. Every insert is keyed (span ids, log and point uids,
``log_id``), so replaying a batch changes nothing.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.dialects.sqlite import insert

from trackio_otel.store import schema
from trackio_otel.translate import pdata
from trackio_otel.translate.conventions.media import MediaFile
from trackio_otel.translate.identity import digest
from trackio_otel.translate.model import Batch, Log, Run, Span
from trackio_otel.translate.trace import AssembledTrace, assemble, is_training_step, with_media

BUSY_TIMEOUT_S = 30.0
LOCK_TIMEOUT_S = 30.0
SQL_IN_CHUNK = 500
SEARCHABLE_SPAN_FIELDS = ("id", "name", "kind", "model", "status", "error", "metadata")
_DATA_URL = re.compile(r'"data:', re.IGNORECASE)
"""How every string ``with_media`` may turn into a file starts, once JSON-encoded."""


def default_trackio_dir() -> Path:
    """Trackio's own resolution: ``TRACKIO_DIR``, else ``$HF_HOME/trackio``, else the HF cache."""
    if os.environ.get("TRACKIO_DIR"):
        return Path(os.environ["TRACKIO_DIR"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(hf_home) / "trackio"


@dataclass
class _Project:
    engine: Engine
    lock_path: Path
    runs: dict[str, str] = field(default_factory=dict)
    """run_id → hash of the config row written for it (rows this process already wrote)."""


class SQLiteStore:
    """Writes batches into ``<trackio_dir>/<project>.db``. One writer thread at a time."""

    def __init__(self, trackio_dir: Path | str) -> None:
        self.trackio_dir = Path(trackio_dir)
        self._projects: dict[str, _Project] = {}
        self._lock = threading.Lock()

    def db_path(self, project: str) -> Path:
        return self.trackio_dir / f"{project}.db"

    def write(self, batch: Batch) -> None:
        """Commit the whole batch; raises (and commits nothing for that project) on failure."""
        for project, part in batch.by_project().items():
            self.write_project(project, part)

    def write_project(self, project: str, batch: Batch) -> None:
        p = self._project(project)
        pending_runs: dict[str, str] = {}
        with _flock(p.lock_path), p.engine.begin() as conn:
            _write(conn, p, batch, pending_runs)
        p.runs.update(pending_runs)  # only once committed

    def close(self) -> None:
        with self._lock:
            for p in self._projects.values():
                p.engine.dispose()
            self._projects.clear()

    def _project(self, project: str) -> _Project:
        with self._lock:
            if project not in self._projects:
                self._projects[project] = self._open(project)
            return self._projects[project]

    def _open(self, project: str) -> _Project:
        self.trackio_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            f"sqlite:///{self.db_path(project)}",
            connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        event.listen(engine, "connect", _configure_connection)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        lock_path = self.trackio_dir / f"{project}.lock"
        with _flock(lock_path), engine.begin() as conn:
            schema.metadata.create_all(conn)
            version = conn.exec_driver_sql("PRAGMA user_version").scalar() or 0
            if version < schema.TRACKIO_SCHEMA_VERSION:
                conn.exec_driver_sql(f"PRAGMA user_version = {schema.TRACKIO_SCHEMA_VERSION}")
        return _Project(engine, lock_path)


def _configure_connection(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN IMMEDIATE ourselves
    cur = dbapi_conn.cursor()
    for pragma in (
        "journal_mode = WAL",
        "synchronous = NORMAL",
        f"busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}",
        "temp_store = MEMORY",
        "cache_size = -20000",
    ):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


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
                time.sleep(0.005)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- The transaction ------------------------------------------------------------------------
def _write(conn: Any, p: _Project, batch: Batch, pending_runs: dict[str, str]) -> None:
    _insert_ignore(
        conn,
        schema.otel_resources,
        [
            {
                "resource_id": r.id,
                "attributes": pdata.dumps(r.attributes),
                "schema_url": r.schema_url,
            }
            for r in batch.resources.values()
        ],
    )
    _insert_ignore(conn, schema.otel_spans, [_span_row(s) for s in batch.spans])
    _insert_ignore(conn, schema.otel_logs, [_log_row(log) for log in batch.logs])
    _insert_ignore(conn, schema.otel_metric_points, [_point_row(pt) for pt in batch.points])
    _ensure_runs(conn, p, batch, pending_runs)
    _insert_ignore(
        conn,
        schema.metrics,
        [
            {
                **_run_cols(s.run),
                "timestamp": pdata.iso(s.time_ns or pdata.now_nano()),
                "step": s.step,
                "metrics": pdata.dumps(s.values),
                "log_id": s.log_id,
            }
            for s in batch.scalars
            if s.step is not None
        ],
    )
    _insert_ignore(
        conn,
        schema.system_metrics,
        [
            {
                **_run_cols(s.run),
                "timestamp": pdata.iso(s.time_ns or pdata.now_nano()),
                "metrics": pdata.dumps(s.values),
                "log_id": s.log_id,
            }
            for s in batch.scalars
            if s.step is None
        ],
    )
    _update_traces(conn, batch, p.lock_path.parent / "media")  # Trackio's MEDIA_DIR


def _insert_ignore(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(table).on_conflict_do_nothing(), rows)


def _run_cols(run: Run) -> dict[str, str]:
    return {"run_id": run.run_id, "run_name": run.run_name}


def _origin(run: Run, resource_id: str, scope_name: str, scope_version: str) -> dict[str, str]:
    return {
        **_run_cols(run),
        "resource_id": resource_id,
        "scope_name": scope_name,
        "scope_version": scope_version,
    }


def _span_row(s: Span) -> dict[str, Any]:
    return {
        "trace_id": s.trace_id,
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "name": s.name,
        "kind": s.kind,
        "start_time_unix_nano": s.start_ns,
        "end_time_unix_nano": s.end_ns,
        "start_time": pdata.iso(s.start_ns) if s.start_ns else None,
        "duration_ms": (s.end_ns - s.start_ns) / 1e6 if s.end_ns >= s.start_ns else None,
        "status_code": s.status_code,
        "status_message": s.status_message,
        "attributes": pdata.dumps(s.attributes),
        "events": pdata.dumps(s.events),
        "links": pdata.dumps(s.links),
        "trace_state": s.trace_state,
        **_origin(s.run, s.resource_id, s.scope_name, s.scope_version),
    }


def _log_row(log: Log) -> dict[str, Any]:
    return {
        "log_uid": log.uid,
        "time_unix_nano": log.time_ns,
        "observed_time_unix_nano": log.observed_ns,
        "timestamp": pdata.iso(log.time_ns or log.observed_ns or pdata.now_nano()),
        "severity_number": log.severity_number,
        "severity_text": log.severity_text,
        "event_name": log.event_name,
        "body": pdata.dumps(log.body),
        "attributes": pdata.dumps(log.attributes),
        "trace_id": log.trace_id,
        "span_id": log.span_id,
        **_origin(log.run, log.resource_id, log.scope_name, log.scope_version),
    }


def _point_row(pt: Any) -> dict[str, Any]:
    return {
        "point_uid": pt.uid,
        "name": pt.name,
        "description": pt.description,
        "unit": pt.unit,
        "type": pt.type,
        "temporality": pt.temporality,
        "is_monotonic": pt.is_monotonic,
        "attributes": pdata.dumps(pt.attributes),
        "start_time_unix_nano": pt.start_ns,
        "time_unix_nano": pt.time_ns,
        "timestamp": pdata.iso(pt.time_ns or pdata.now_nano()),
        "value": pt.value,
        "count": pt.count,
        "sum": pt.sum,
        "min": pt.min,
        "max": pt.max,
        "buckets": pdata.dumps(pt.buckets) if pt.buckets is not None else None,
        **_origin(pt.run, pt.resource_id, pt.scope_name, pt.scope_version),
    }


def _ensure_runs(conn: Any, p: _Project, batch: Batch, pending: dict[str, str]) -> None:
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
        _insert_ignore(
            conn,
            schema.metrics,
            [
                {
                    **_run_cols(run),
                    "timestamp": created,
                    "step": 0,
                    "metrics": "{}",
                    "log_id": digest(run_id, "trackio-otel run start"),
                }
            ],
        )
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
                **_run_cols(run),
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


# --- Traces ---------------------------------------------------------------------------------
def _update_traces(conn: Any, batch: Batch, media_dir: Path) -> None:
    spans_by_trace: dict[str, list[Span]] = defaultdict(list)
    for s in batch.spans:
        spans_by_trace[s.trace_id].append(s)
    touched = set(spans_by_trace) | {
        log.trace_id for log in batch.logs if log.trace_id and log.span_id
    }
    if not touched:
        return
    t = schema.traces
    existing = {
        row.id: row.step for row in _select_in(conn, select(t.c.id, t.c.step), t.c.id, touched)
    }
    # Traces seen before (or named only by a log) are rebuilt from everything stored.
    reload = [tid for tid in touched if tid in existing or tid not in spans_by_trace]
    stored_spans = _load_spans(conn, batch, reload)
    logs = _load_logs(conn, batch, touched)

    assembled: list[AssembledTrace] = []
    for trace_id in touched:
        spans = stored_spans.get(trace_id) or spans_by_trace.get(trace_id)
        if spans and not is_training_step(spans):
            assembled.append(assemble(spans, logs.get(trace_id, [])))
    next_step: dict[str, int] = {}
    rows = []
    files: dict[str, MediaFile] = {}
    rollouts = []
    for a in sorted(assembled, key=lambda a: (a.start_ns, a.trace_id)):
        step = a.step if a.step is not None else existing.get(a.trace_id)
        if step is None:  # the per-run rule: the run's next trace number
            if a.run.run_id not in next_step:
                top = conn.execute(
                    select(func.max(t.c.step)).where(t.c.run_id == a.run.run_id)
                ).scalar()
                next_step[a.run.run_id] = -1 if top is None else top
            next_step[a.run.run_id] += 1
            step = next_step[a.run.run_id]
        row = trace_row(a, step)
        if _DATA_URL.search(row["messages"]) or _DATA_URL.search(row["spans"]):
            row = trace_row(with_media(a, step, files), step)  # rare: walk it for images
        rows.append(row)
        if a.scalars:
            rollouts.append(rollout_row(a, step))
    if not rows:  # only log events so far: their spans will bring the trace
        return
    _write_media(media_dir, files.values())  # before the rows that reference them commit
    stmt = insert(t)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={
                c: stmt.excluded[c]
                for c in (
                    "run_id",
                    "run_name",
                    "timestamp",
                    "step",
                    "key",
                    "messages",
                    "metadata",
                    "search_text",
                    "spans",
                )
            },
        ),
        rows,
    )
    if rollouts:  # a late span may add a reward or move the step: rewrite, keyed by trace
        stmt = insert(schema.metrics)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["log_id"],
                index_where=schema.metrics.c.log_id.isnot(None),
                set_={c: stmt.excluded[c] for c in ("run_name", "timestamp", "step", "metrics")},
            ),
            rollouts,
        )


def rollout_row(a: AssembledTrace, step: int) -> dict[str, Any]:
    """A rollout's reward and advantage as a Trackio ``metrics`` row at its trace's step."""
    return {
        **_run_cols(a.run),
        "timestamp": pdata.iso(a.start_ns or pdata.now_nano()),
        "step": step,
        "metrics": pdata.dumps(a.scalars),
        "log_id": digest(a.trace_id, "rollout"),
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


def trace_row(a: AssembledTrace, step: int) -> dict[str, Any]:
    row = {
        "id": a.trace_id,
        **_run_cols(a.run),
        "timestamp": pdata.iso(a.start_ns or pdata.now_nano()),
        "step": step,
        "key": a.key,
        "trace_index": None,
        "messages": pdata.dumps(a.messages),
        "metadata": pdata.dumps(a.metadata),
        "spans": pdata.dumps(a.spans),
        "log_id": a.trace_id,
        "space_id": None,
    }
    row["search_text"] = search_text(a)
    return row


def search_text(a: AssembledTrace) -> str:
    """Trackio's algorithm: id, key, then every scalar of messages, metadata and the
    searchable span fields (never span input/output)."""
    parts: list[str] = []

    def visit(container: dict[str, Any] | list[Any]) -> None:  # recursing on containers only
        for value in container.values() if isinstance(container, dict) else container:
            if isinstance(value, (dict, list)):
                visit(value)
            elif value is not None:
                parts.append(str(value))

    visit([a.messages, a.metadata])
    for span in a.spans:
        visit([span.get(name) for name in SEARCHABLE_SPAN_FIELDS])
    return f"{a.trace_id} {a.key} {' '.join(parts)}".lower()


def _select_in(
    conn: Any, query: Any, column: Any, values: Sequence[str] | set[str]
) -> Iterator[Any]:
    values = list(values)
    for i in range(0, len(values), SQL_IN_CHUNK):
        yield from conn.execute(query.where(column.in_(values[i : i + SQL_IN_CHUNK])))


def _load_spans(conn: Any, batch: Batch, trace_ids: list[str]) -> dict[str, list[Span]]:
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


def _load_logs(conn: Any, batch: Batch, trace_ids: set[str]) -> dict[str, list[Log]]:
    """GenAI log events of these traces, stored now or earlier (they may precede their span)."""
    out: dict[str, list[Log]] = defaultdict(list)
    lg = schema.otel_logs
    query = select(lg).where(lg.c.event_name.like("gen_ai.%"))
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


class _RunCache:
    """Runs of rows read back: the batch's own Run objects, else rebuilt from the row."""

    def __init__(self, batch: Batch) -> None:
        self._runs = {r.run.run_id: r.run for r in [*batch.spans, *batch.logs]}
        self._project = next(iter(self._runs.values())).project if self._runs else ""

    def get(self, run_id: str, run_name: str) -> Run:
        if run_id not in self._runs:
            self._runs[run_id] = Run(self._project, run_id, run_name)
        return self._runs[run_id]
