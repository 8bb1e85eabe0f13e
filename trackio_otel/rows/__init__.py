"""Trace rows: the stage between translation and the store.

    receive → decode → translate → rows → store

Translation turns an OTLP request into records (``translate.model.Batch``); this stage
turns records into table rows and owns everything about Trackio trace rows: each span's
view (``views``), their assembly into one row per trace (``trace``), step numbering,
media placement, the training-step policy, search text and rollout statistics
(``rollouts``). The store
then commits rows and knows no convention.

Assembly is incremental. A span is translated once, when it arrives, and its view is
stored with it; a trace's row is made by merging its stored views, inside the commit, so
it reflects every span any writer committed before, in any order. Merging is cheap but
grows with the trace, so a long trace is not merged on every arrival: its row is made
again when its root arrives, while it is small, and each time it doubled
(amortised, a constant number of merges per span); in between its row lags and its state
says so (``dirty``), and ``settle`` brings every lagging row up to date when the writer
is idle.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from trackio_otel.rows import records, rollouts, trace
from trackio_otel.rows import views as span_views
from trackio_otel.rows.views import View
from trackio_otel.store import Row, RunRow, Write
from trackio_otel.translate import pdata
from trackio_otel.translate.conventions import view
from trackio_otel.translate.conventions.media import MediaFile
from trackio_otel.translate.model import Batch, Log, Run, Span

if TYPE_CHECKING:
    from trackio_otel.store.sqlite import SQLiteStore, Tx

GENAI_EVENTS = "gen_ai."
"""Log events that are part of a trace's conversation (``gen_ai.user.message``, ...); other
logs of a trace are kept in ``otel_logs`` but do not change its Trackio row."""
SMALL_TRACE = 32
"""Traces up to this many spans are merged again on every arrival."""
GROWTH = 2.0
"""A larger trace is merged again once it holds this many times the spans of its row
(1.25 merged ~5 times as many spans as the trace holds, 2 about twice)."""
SETTLE_TRACES = 64
"""Lagging traces brought up to date per ``settle`` transaction (keeps the lock short)."""

TraceKey = tuple[str, str]
"""(trace_id, run_id): a trace of a run. Seeded runs reuse trace ids, so a trace id alone
names nothing."""
SpanKey = tuple[str, str, str]
"""(trace_id, run_id, span_id)."""


def write(store: SQLiteStore, batch: Batch) -> list[tuple[Span, str]]:
    """Commit the batch, one transaction per project; returns the spans not stored and
    why (their key holds a span of other content)."""
    conflicts: list[tuple[Span, str]] = []
    for prepared in prepare(store, batch):
        conflicts += prepared.commit(store)
    return conflicts


def settle(store: SQLiteStore) -> None:
    """Bring lagging trace rows up to date (see the module's docstring); for idle time."""
    for project in store.projects():
        with store.snapshot(project) as tx:
            if not tx.dirty_traces(1):
                continue
        settled = [SETTLE_TRACES]
        while settled[-1] == SETTLE_TRACES:  # a full round: there may be more
            store.commit(Write(project, then=partial(_settle, project=project, out=settled)))


def prepare(store: SQLiteStore, batch: Batch) -> list[Prepared]:
    """Rows and span views for each project's share of the batch, with no lock held."""
    return [_prepare(store, project, part) for project, part in batch.by_project().items()]


@dataclass
class _Trace:
    """What one batch brings to one trace."""

    run_name: str
    root: bool = False
    """The batch holds the trace's root."""
    whole: trace.Assembled | None = None
    """The row assembled from this batch's spans alone: the trace's row if nothing of it
    was stored before (the common case: a whole short trace in one request)."""
    alone: bool = False
    """``whole`` was assembled (none of the trace was stored at the snapshot)."""
    row: Row | None = None
    """``whole``'s ``traces`` row but its step (which the commit numbers), made with no
    lock held; None when it places media, whose file names need the step."""
    whole_views: dict[SpanKey, str] = field(default_factory=dict)
    """The batch's spans of this trace that were stored with thin views, as ``whole`` is
    their row, and their whole views: written instead should another row be made."""


@dataclass
class Prepared:
    """A project's share of a batch, ready to commit."""

    project: str
    batch: Batch
    rows: dict[str, list[Row]]
    runs: list[RunRow]
    views: dict[SpanKey, View]
    """Views of the batch's spans, and of stored spans its log events changed."""
    remade: list[Row]
    """``otel_spans.view`` updates for those stored spans."""
    traces: dict[TraceKey, _Trace]
    log_spans: set[SpanKey]
    """Spans the batch's GenAI log events belong to."""
    by_key: dict[SpanKey, Span] = field(default_factory=dict)
    repeated: list[tuple[Span, str]] = field(default_factory=list)
    """Spans under a key an earlier span of the batch took, with other content."""

    def commit(self, store: SQLiteStore) -> list[tuple[Span, str]]:
        conflicts = store.commit(Write(self.project, self.rows, self.runs, self._then))
        return [
            *self.repeated,
            *(
                (self.by_key[key], _conflict(key[0], key[2], "stored in this run"))
                for key in map(_row_key, conflicts)
            ),
        ]

    def _then(self, tx: Tx, conflicts: list[Row]) -> None:
        """Inside the transaction, after the inserts: views and trace rows."""
        changed: set[TraceKey] = set()
        for row in conflicts:  # the stored span stands: its view, not this one
            key = _row_key(row)
            self.views.pop(key, None)
            self.traces[key[:2]].alone = False
            self.traces[key[:2]].whole_views.pop(key, None)
        if self.remade:
            tx.set_views(self.remade)
            changed |= {(r["key_trace_id"], r["key_run_id"]) for r in self.remade}
        changed |= _remake_stale_views(tx, self)
        for key in changed:  # its views changed since the whole row was assembled
            self.traces[key].alone = False
        _update_traces(tx, self.project, self.traces, changed)


def _prepare(store: SQLiteStore, project: str, batch: Batch) -> Prepared:
    genai_logs = [
        log
        for log in batch.logs
        if log.trace_id and log.span_id and log.event_name.startswith(GENAI_EVENTS)
    ]
    runs = {r.run.run_id: r.run for r in [*batch.spans, *batch.logs]}
    traces: dict[TraceKey, _Trace] = {}
    for record in [*batch.spans, *genai_logs]:
        key = (record.trace_id, record.run.run_id)
        if key not in traces:
            traces[key] = _Trace(record.run.run_name)
    logs: dict[SpanKey, dict[str, Log]] = defaultdict(dict)
    for log in genai_logs:
        logs[(log.trace_id, log.run.run_id, log.span_id)][log.uid] = log
    by_key: dict[SpanKey, Span] = {}
    repeated: list[tuple[Span, str]] = []
    for s in batch.spans:  # the first of a key stands, as for one stored before
        first = by_key.setdefault(_span_key(s), s)
        if first is not s and records.span_row(first) != records.span_row(s):
            repeated.append((s, _conflict(s.trace_id, s.span_id, "earlier in this request")))
    log_spans = set(logs)
    stored_spans: list[Any] = []
    states: dict[TraceKey, Any] = {}
    if traces:
        with store.snapshot(project) as tx:
            for row in tx.logs(traces, GENAI_EVENTS):
                stored = records.log_of_row(row, runs[row.run_id])
                logs[(row.trace_id, row.run_id, row.span_id)].setdefault(stored.uid, stored)
            if orphans := log_spans - by_key.keys():
                stored_spans = tx.spans(orphans)
            states = tx.trace_states(traces)

    views = {key: view(s, list(logs[key].values())) for key, s in by_key.items()}
    remade = []
    for row in stored_spans:  # spans stored earlier whose log events arrive now
        key = (row.trace_id, row.run_id, row.span_id)
        views[key] = _remake(row, runs[row.run_id], list(logs[key].values()))
        remade.append(_view_row(key, span_views.encode(views[key])[0]))
    for s in batch.spans:
        t = traces[(s.trace_id, s.run.run_id)]
        t.root = t.root or s.parent_span_id is None
    span_rows: dict[SpanKey, Row] = {}
    encoded = {}  # (whole, thin) view of each span, made before assembly's steps change it
    made = {key: views[key].metadata for key in by_key}  # a step changing it makes another
    for key, s in by_key.items():
        span_rows[key] = records.span_row(s)
        encoded[key] = span_views.encode(views[key])
        span_rows[key]["view"] = encoded[key][0]
    per_trace: dict[TraceKey, list[View]] = defaultdict(list)
    for key, v in views.items():
        per_trace[key[:2]].append(v)
    for key, t in traces.items():
        if key not in states and key in per_trace:
            t.whole, t.alone = trace.assemble(key[0], key[1], per_trace[key]), True
            if t.whole is not None and not t.whole.media:
                t.row = records.trace_row(t.whole, t.run_name, step=0)
                for span_key in by_key.keys() & {(*key, v.span_id) for v in per_trace[key]}:
                    whole, thin = encoded[span_key]
                    as_made = views[span_key].metadata is made[span_key]
                    if thin is not None and _stored_as(t.whole, None, as_made) == "thin":
                        span_rows[span_key]["view"], t.whole_views[span_key] = thin, whole
    rows = {
        "otel_resources": [records.resource_row(r) for r in batch.resources.values()],
        "otel_spans": list(span_rows.values()),
        "otel_logs": [records.log_row(log) for log in batch.logs],
        "otel_metric_points": [records.point_row(pt) for pt in batch.points],
        "metrics": [records.scalars_row(s) for s in batch.scalars if s.step is not None],
        "system_metrics": [records.scalars_row(s) for s in batch.scalars if s.step is None],
    }
    run_rows = _runs(batch)
    rows["metrics"] = [
        *(records.run_start_row(run, r.created) for run, r in run_rows),
        *rows["metrics"],
    ]
    prepared = Prepared(
        project, batch, rows, [r for _, r in run_rows], views, remade, traces, log_spans
    )
    prepared.by_key, prepared.repeated = by_key, repeated
    return prepared


def _runs(batch: Batch) -> list[tuple[Run, RunRow]]:
    """Each run of the batch, created at its earliest record."""
    first_seen: dict[str, tuple[Run, int]] = {}
    for record in [*batch.spans, *batch.logs, *batch.points, *batch.scalars]:
        t = getattr(record, "start_ns", 0) or getattr(record, "time_ns", 0) or pdata.now_nano()
        run = record.run
        if run.run_id not in first_seen or t < first_seen[run.run_id][1]:
            first_seen[run.run_id] = (run, t)
    return [
        (run, RunRow(run.run_id, run.run_name, run.group, run.config, pdata.iso(t)))
        for run, t in first_seen.values()
    ]


def _conflict(trace_id: str, span_id: str, where: str) -> str:
    return (
        f"span {span_id} of trace {trace_id}: a span of other content is {where} under "
        "these ids (that one is kept)"
    )


def _span_key(s: Span) -> SpanKey:
    return (s.trace_id, s.run.run_id, s.span_id)


def _row_key(row: Any) -> SpanKey:
    if isinstance(row, dict):
        return (row["trace_id"], row["run_id"], row["span_id"])
    return (row.trace_id, row.run_id, row.span_id)


def _view_row(key: SpanKey, view: str) -> Row:
    """An ``otel_spans.view`` update: the view and its span's key."""
    return {"view": view, "key_trace_id": key[0], "key_run_id": key[1], "key_span_id": key[2]}


def _remake(row: Any, run: Run, logs: list[Log]) -> View:
    """A stored span's view made again with its log events; its service stays the one it
    arrived with (the run's resource may differ from the logs')."""
    service = span_views.service_of(row.view)
    return view(records.span_of_row(row, replace(run, service=service)), logs)


def _remake_stale_views(tx: Tx, p: Prepared) -> set[TraceKey]:
    """Views made from fewer GenAI log events than are now committed for their span:
    another writer committed the span or its events since the snapshot (rare). Made again
    here, from the committed rows, so the trace converges whichever writer saw what."""
    keys = {k[:2] for k in p.views} | {k[:2] for k in p.log_spans}
    if not keys:
        return set()
    counts = tx.log_counts(keys, GENAI_EVENTS)
    stale = {k for k, v in p.views.items() if counts.get(k, 0) != v.logs}
    stale |= {k for k in p.log_spans - p.views.keys()}  # the span committed meanwhile?
    if not stale:
        return set()
    remade = _remade(tx, p.project, stale)
    p.views.update(remade)
    tx.set_views([_view_row(key, span_views.encode(v)[0]) for key, v in remade.items()])
    for key in remade:
        if (trace_key := key[:2]) in p.traces:  # its view from the batch is stale too
            p.traces[trace_key].whole_views.pop(key, None)
    return {key[:2] for key in remade}


def _update_traces(
    tx: Tx, project: str, traces: dict[TraceKey, _Trace], changed: set[TraceKey]
) -> None:
    """Merge the traces this batch touched, or mark them as lagging (module docstring)."""
    states = tx.trace_states(traces)
    counts = tx.span_counts(traces)
    merge: dict[TraceKey, trace.Assembled | None] = {}
    new_states = []
    for key, t in traces.items():
        n = counts.get(key, 0)
        if n == 0:  # only log events so far: the span brings them in
            continue
        st = states.get(key)
        root = bool(st and st.root) or t.root
        if st is not None and n == st.spans and key not in changed and not st.dirty:
            continue  # a retry: nothing new
        if st is None and t.alone:
            if t.whole is not None:  # None: a training step, no row
                merge[key] = t.whole
        elif st is None or n <= SMALL_TRACE or t.root or n >= st.built * GROWTH:
            merge[key] = None  # from the stored views
        else:
            new_states.append(_state(key, t.run_name, n, st.built, root, dirty=True))
            continue
        new_states.append(_state(key, t.run_name, n, n, root, dirty=False))
    rows = {k: t.row for k, t in traces.items() if t.row is not None and merge.get(k) is t.whole}
    tx.set_views(  # views stored thin for a row not made after all: whole again
        [
            _view_row(span_key, whole)
            for k, t in traces.items()
            if merge.get(k) is not t.whole
            for span_key, whole in t.whole_views.items()
        ]
    )
    _merge(tx, project, merge, {k: t.run_name for k, t in traces.items()}, rows)
    tx.upsert("otel_trace_state", new_states)


def _settle(tx: Tx, _conflicts: list[Row], project: str, out: list[int]) -> None:
    dirty = tx.dirty_traces(SETTLE_TRACES)
    keys = {(st.trace_id, st.run_id): st for st in dirty}
    counts = tx.span_counts(keys)
    _merge(tx, project, dict.fromkeys(keys), {k: st.run_name for k, st in keys.items()})
    tx.upsert(
        "otel_trace_state",
        [
            _state(k, st.run_name, counts.get(k, 0), counts.get(k, 0), st.root, dirty=False)
            for k, st in keys.items()
        ],
    )
    out.append(len(dirty))


def _state(key: TraceKey, run_name: str, spans: int, built: int, root: bool, dirty: bool) -> Row:
    return {
        "trace_id": key[0],
        "run_id": key[1],
        "run_name": run_name,
        "spans": spans,
        "built": built,
        "root": root,
        "dirty": dirty,
    }


def _merge(
    tx: Tx,
    project: str,
    traces: dict[TraceKey, trace.Assembled | None],
    run_names: dict[TraceKey, str],
    made: dict[TraceKey, Row] | None = None,
) -> None:
    """Write the rows of these traces: ``None`` ones assembled from their stored views;
    those in ``made`` already have their row, less its step."""
    made = made or {}
    stored = tx.views([k for k, a in traces.items() if a is None])
    thin_in = [k for k, rs in stored.items() if any(span_views.is_thin(r[-1]) for r in rs)]
    row_spans = tx.trace_spans(records.trace_row_id(k[1], k[0]) for k in thin_in)
    io: dict[TraceKey, dict[str, span_views.Io]] = {}
    for key in thin_in:
        spans = row_spans.get(records.trace_row_id(key[1], key[0]))
        io[key] = span_views.row_io(spans) if spans else {}
    lost = {  # thin views whose row no longer holds them (Trackio deleted the run's rows)
        (*key, r[0])
        for key in thin_in
        for r in stored[key]
        if span_views.is_thin(r[-1]) and r[0] not in io[key]
    }
    remade = _remade(tx, project, lost) if lost else {}
    assembled: list[tuple[trace.Assembled, str]] = []
    rewritten: list[Row] = []
    for key, a in traces.items():
        if a is None:
            a, views = _assemble_stored(key, stored.get(key, []), io.get(key, {}), remade)
            rewritten += views
        if a is not None:
            assembled.append((a, run_names[key]))
    tx.set_views(rewritten)
    if not assembled:
        return
    steps = tx.trace_steps(records.trace_row_id(a.run_id, a.trace_id) for a, _ in assembled)
    next_step: dict[str, int] = {}
    trace_rows = []
    rollout_steps: dict[tuple[str, int], str] = {}  # (run_id, step) → run_name
    files: dict[str, MediaFile] = {}
    for a, run_name in sorted(assembled, key=lambda x: (x[0].start_ns, x[0].trace_id)):
        before = steps.get(records.trace_row_id(a.run_id, a.trace_id))
        step = a.step if a.step is not None else before
        if step is None:  # the per-run rule: the run's next trace number
            if a.run_id not in next_step:
                top = tx.last_trace_step(a.run_id)
                next_step[a.run_id] = -1 if top is None else top
            next_step[a.run_id] += 1
            step = next_step[a.run_id]
        if a.media:  # rare: the files' names need the step
            trace.place_media(a, project, run_name, step, files)
        row = made.get((a.trace_id, a.run_id))
        trace_rows.append({**row, "step": step} if row else records.trace_row(a, run_name, step))
        if rollouts.is_rollout(a.metadata):
            rollout_steps[(a.run_id, step)] = run_name
            if before is not None and before != step:  # moved: its old step loses it
                rollout_steps[(a.run_id, before)] = run_name
    tx.write_media((f.path, f.data) for f in files.values())
    tx.upsert("traces", trace_rows)
    statistics = [_rollout_statistics(tx, *k, name) for k, name in rollout_steps.items()]
    stale = tx.existing_metrics(r["log_id"] for r in statistics if r["metrics"] is None)
    tx.upsert(
        "metrics",
        [
            r if r["metrics"] is not None else {**r, "metrics": '{"rollout/count":0}'}
            for r in statistics
            if r["metrics"] is not None or r["log_id"] in stale
        ],
    )


def _assemble_stored(
    key: TraceKey, stored: list[Any], io: dict[str, span_views.Io], remade: dict[SpanKey, View]
) -> tuple[trace.Assembled | None, list[Row]]:
    """A trace's row content from its stored views (``io``: thin ones' input, output and
    metadata, from the trace's row; ``remade``: views made again from their spans), and
    the view updates that keep each true to the row about to be written: thin where the
    row shows the span as it was made, whole where a step replaced its metadata."""
    views, kept = [], []
    for r in stored:
        span_key = (*key, r[0])
        v = remade[span_key] if span_key in remade else span_views.decode(*r, io=io.get(r[0]))
        forms = span_views.encode(v) if span_key in remade else None  # before the steps
        views.append(v)
        kept.append((r, v, v.metadata, forms))
    a = trace.assemble(key[0], key[1], views)
    updates = []
    for r, v, metadata, forms in kept:
        stored_view = None if forms is not None else r[-1]  # a remade view is not stored yet
        if (want := _stored_as(a, stored_view, v.metadata is metadata)) is None:
            continue
        if forms is None:  # the view as stored, before the steps changed it
            forms = span_views.encode(span_views.decode(*r, io=io.get(r[0])))
        view = forms[1] if want == "thin" and forms[1] is not None else forms[0]
        updates.append(_view_row((*key, r[0]), view))
    return a, updates


def _stored_as(a: trace.Assembled | None, stored: str | None, as_made: bool) -> str | None:
    """How a view should be stored ("thin" or "whole") beside the row ``a`` about to be
    written; None: as it is (``stored``: its stored JSON, None if it is not stored yet).
    Thin where the row shows the span as it was made (``as_made``: no step replaced its
    metadata) and places no media; a thin view holds no image, so media leaves it be."""
    thin = a is not None and as_made and not a.media
    if stored is None:
        return "thin" if thin else "whole"
    if span_views.is_thin(stored):
        return None if as_made else "whole"
    return "thin" if thin else None


def _remade(tx: Tx, project: str, keys: set[SpanKey]) -> dict[SpanKey, View]:
    """Views made again from their committed spans and GenAI log events (a key whose span
    is not committed is left out)."""
    rows = tx.spans(keys)
    logs: dict[SpanKey, list[Log]] = defaultdict(list)
    for row in tx.logs({k[:2] for k in keys}, GENAI_EVENTS):
        run = Run(project, row.run_id, row.run_name)
        logs[(row.trace_id, row.run_id, row.span_id)].append(records.log_of_row(row, run))
    return {
        (r.trace_id, r.run_id, r.span_id): _remake(
            r, Run(project, r.run_id, r.run_name), logs[(r.trace_id, r.run_id, r.span_id)]
        )
        for r in rows
    }


def _rollout_statistics(tx: Tx, run_id: str, step: int, run_name: str) -> Row:
    """The step's statistics row, from every trace row of the step as now committed
    (``metrics`` None: the step holds no rollout now)."""
    found = [
        (timestamp, meta)
        for timestamp, raw in tx.traces_at(run_id, step)
        if rollouts.is_rollout(meta := orjson.loads(raw))
    ]
    first = min((timestamp for timestamp, _ in found), default=pdata.iso(pdata.now_nano()))
    row = records.rollout_statistics_row(
        run_id, run_name, step, first, rollouts.statistics_of([meta for _, meta in found])
    )
    return row if found else {**row, "metrics": None}
