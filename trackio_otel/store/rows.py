"""Records → table rows (dicts keyed by column name). Pure: no database, no clock but the
fallback ``now`` for records that carry no time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from trackio_otel.translate import pdata
from trackio_otel.translate.identity import digest
from trackio_otel.translate.model import Log, Point, Resource, Run, Scalars, Span
from trackio_otel.translate.trace import AssembledTrace

SEARCHABLE_SPAN_FIELDS = ("id", "name", "kind", "model", "status", "error", "metadata")


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
    return pdata.dumps(items) if items else "[]"  # most spans have no events or links


def resource_row(r: Resource) -> dict[str, Any]:
    return {
        "resource_id": r.id,
        "attributes": pdata.dumps(r.attributes),
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
        "attributes": pdata.dumps(s.attributes),
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
        "body": pdata.dumps(log.body),
        "attributes": pdata.dumps(log.attributes),
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


def scalars_row(s: Scalars) -> dict[str, Any]:
    """A ``metrics`` row when the scalars have a step, else a ``system_metrics`` row."""
    row = {
        **run_cols(s.run),
        "timestamp": pdata.iso(s.time_ns or pdata.now_nano()),
        "metrics": pdata.dumps(s.values),
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


def trace_row(a: AssembledTrace, step: int) -> dict[str, Any]:
    return {
        "id": a.trace_id,
        **run_cols(a.run),
        "timestamp": pdata.iso(a.start_ns or pdata.now_nano()),
        "step": step,
        "key": a.key,
        "trace_index": None,
        "messages": pdata.dumps(a.messages),
        "metadata": pdata.dumps(a.metadata),
        "spans": pdata.dumps(a.spans),
        "log_id": a.trace_id,
        "space_id": None,
        "search_text": search_text(a),
    }


def search_text(a: AssembledTrace) -> str:
    """Trackio's algorithm: id, key, then every scalar of messages, metadata and the
    searchable span fields (never span input/output)."""
    parts: list[str] = []
    _scalars(a.messages, parts)
    _scalars(a.metadata.values(), parts)
    for span in a.spans:
        _scalars(map(span.get, SEARCHABLE_SPAN_FIELDS), parts)
    return f"{a.trace_id} {a.key} {' '.join(parts)}".lower()


def _scalars(values: Iterable[Any], parts: list[str]) -> None:
    """Append every scalar in ``values``, depth first, to ``parts``: a call per container,
    not per scalar. Module-level, as a nested recursive function is a reference cycle
    that only the garbage collector frees."""
    for value in values:
        kind = type(value)
        if kind is str:
            parts.append(value)
        elif kind is dict:
            _scalars(value.values(), parts)
        elif kind is list:
            _scalars(value, parts)
        elif value is not None:
            parts.append(str(value))


def rollout_row(a: AssembledTrace, step: int) -> dict[str, Any]:
    """A rollout's reward and advantage as a Trackio ``metrics`` row at its trace's step."""
    return {
        **run_cols(a.run),
        "timestamp": pdata.iso(a.start_ns or pdata.now_nano()),
        "step": step,
        "metrics": pdata.dumps(a.scalars),
        "log_id": digest(a.trace_id, "rollout"),
    }
