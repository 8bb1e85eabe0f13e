"""Records → table rows (dicts keyed by column name), and the Trackio rows of assembled
traces. Pure: no database, no clock but the fallback ``now`` for records that carry no time."""

from __future__ import annotations

from typing import Any

import orjson

from trackio_otel.rows.trace import Assembled, search_text
from trackio_otel.rows.views import dumps
from trackio_otel.translate import pdata
from trackio_otel.translate.identity import digest
from trackio_otel.translate.model import Log, Point, Resource, Run, Scalars, Span


def run_cols(run: Run) -> dict[str, str]:
    return {"run_id": run.run_id, "run_name": run.run_name}


def _origin(run: Run, resource_id: str, scope_name: str, scope_version: str) -> dict[str, str]:
    return {
        **run_cols(run),
        "resource_id": resource_id,
        "scope_name": scope_name,
        "scope_version": scope_version,
    }


def _json_list(items: list[Any]) -> str:
    return dumps(items) if items else "[]"  # most spans have no events or links


def resource_row(r: Resource) -> dict[str, Any]:
    return {
        "resource_id": r.id,
        "attributes": dumps(r.attributes),
        "schema_url": r.schema_url,
    }


def span_row(s: Span) -> dict[str, Any]:
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
        "attributes": dumps(s.attributes),
        "events": _json_list(s.events),
        "links": _json_list(s.links),
        "trace_state": s.trace_state,
        **_origin(s.run, s.resource_id, s.scope_name, s.scope_version),
    }


def log_row(log: Log) -> dict[str, Any]:
    return {
        "log_uid": log.uid,
        "time_unix_nano": log.time_ns,
        "observed_time_unix_nano": log.observed_ns,
        "timestamp": pdata.iso(log.time_ns or log.observed_ns or pdata.now_nano()),
        "severity_number": log.severity_number,
        "severity_text": log.severity_text,
        "event_name": log.event_name,
        "body": dumps(log.body),
        "attributes": dumps(log.attributes),
        "trace_id": log.trace_id,
        "span_id": log.span_id,
        **_origin(log.run, log.resource_id, log.scope_name, log.scope_version),
    }


def point_row(pt: Point) -> dict[str, Any]:
    return {
        "point_uid": pt.uid,
        "name": pt.name,
        "description": pt.description,
        "unit": pt.unit,
        "type": pt.type,
        "temporality": pt.temporality,
        "is_monotonic": pt.is_monotonic,
        "attributes": dumps(pt.attributes),
        "start_time_unix_nano": pt.start_ns,
        "time_unix_nano": pt.time_ns,
        "timestamp": pdata.iso(pt.time_ns or pdata.now_nano()),
        "value": pt.value,
        "count": pt.count,
        "sum": pt.sum,
        "min": pt.min,
        "max": pt.max,
        "buckets": dumps(pt.buckets) if pt.buckets is not None else None,
        **_origin(pt.run, pt.resource_id, pt.scope_name, pt.scope_version),
    }


def scalars_row(s: Scalars) -> dict[str, Any]:
    """A ``metrics`` row when the scalars have a step, else a ``system_metrics`` row."""
    row = {
        **run_cols(s.run),
        "timestamp": pdata.iso(s.time_ns or pdata.now_nano()),
        "metrics": dumps(s.values),
        "log_id": s.log_id,
    }
    if s.step is not None:
        row["step"] = s.step
    return row


def run_start_row(run: Run, created: str) -> dict[str, Any]:
    """The empty step-0 ``metrics`` row that makes Trackio list the run (it lists runs from
    ``metrics`` only); keyed, so writing it again is a no-op."""
    return {
        **run_cols(run),
        "timestamp": created,
        "step": 0,
        "metrics": "{}",
        "log_id": digest(run.run_id, "trackio-otel run start"),
    }


def trace_row_id(run_id: str, trace_id: str) -> str:
    """``traces.id``: one row per trace of a run. Seeded runs reuse trace ids (the OTel
    SDK draws them from the global ``random``), so the trace id alone is not a key."""
    return digest(run_id, trace_id)


def trace_row(a: Assembled, run_name: str, step: int) -> dict[str, Any]:
    row_id = trace_row_id(a.run_id, a.trace_id)
    return {
        "id": row_id,
        "run_id": a.run_id,
        "run_name": run_name,
        "timestamp": pdata.iso(a.start_ns or pdata.now_nano()),
        "step": step,
        "key": a.key,
        "trace_index": None,
        "messages": dumps(a.messages),
        "metadata": dumps(a.metadata),
        "spans": dumps(a.spans),
        "log_id": row_id,
        "space_id": None,
        "search_text": search_text(a),
    }


def rollout_statistics_row(
    run_id: str, run_name: str, step: int, timestamp: str, values: dict[str, Any]
) -> dict[str, Any]:
    """The ``metrics`` row of a step's rollout statistics (``rows.rollouts``): one per run
    and step, rewritten under its ``log_id`` as more rollouts of the step arrive."""
    return {
        "run_id": run_id,
        "run_name": run_name,
        "timestamp": timestamp,
        "step": step,
        "metrics": dumps(values),
        "log_id": digest(run_id, step, "rollout statistics"),
    }


def span_of_row(row: Any, run: Run) -> Span:
    """A stored ``otel_spans`` row back as the span it was made from (``span_row``'s
    inverse), for the rare re-translation of a span whose GenAI log events came later."""
    return Span(
        run=run,
        resource_id=row.resource_id,
        trace_id=row.trace_id,
        span_id=row.span_id,
        parent_span_id=row.parent_span_id,
        name=row.name,
        kind=row.kind,
        start_ns=row.start_time_unix_nano,
        end_ns=row.end_time_unix_nano,
        status_code=row.status_code,
        status_message=row.status_message or "",
        attributes=orjson.loads(row.attributes),
        events=orjson.loads(row.events),
        links=orjson.loads(row.links),
        scope_name=row.scope_name or "",
        scope_version=row.scope_version or "",
        trace_state=row.trace_state or "",
    )


def log_of_row(row: Any, run: Run) -> Log:
    """A stored ``otel_logs`` row back as its log record (``log_row``'s inverse)."""
    return Log(
        uid=row.log_uid,
        run=run,
        resource_id=row.resource_id,
        time_ns=row.time_unix_nano,
        observed_ns=row.observed_time_unix_nano,
        severity_number=row.severity_number or 0,
        severity_text=row.severity_text or "",
        event_name=row.event_name or "",
        body=orjson.loads(row.body) if row.body else None,
        attributes=orjson.loads(row.attributes),
        trace_id=row.trace_id,
        span_id=row.span_id,
        scope_name=row.scope_name or "",
        scope_version=row.scope_version or "",
    )
