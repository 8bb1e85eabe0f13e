"""ExportLogsServiceRequest → Batch of log records, plus ``trackio.log`` scalar rows.

GenAI content events stay log records here; the trace assembler joins them to their span
by span id whenever either side arrives.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

from trackio_otel import semconv
from trackio_otel.translate import pdata, steps
from trackio_otel.translate.conventions import media
from trackio_otel.translate.identity import canonical, digest, placed
from trackio_otel.translate.model import Batch, Log, Scalars

# Trackio renames these metric keys (run.py), so do we.
_RESERVED_KEYS = frozenset({"project", "run", "timestamp", "step", "time", "metrics"})


def from_request(request: ExportLogsServiceRequest, images: bool = True) -> Batch:
    """``images``: whether the request may carry inline images (``media.may_hold_images``);
    only then are its records' images counted against the media limits."""
    batch = Batch()
    for i, resource_logs, resource, run in placed(
        batch, request.resource_logs, "resource_logs", _record_count
    ):
        for j, scope_logs in enumerate(resource_logs.scope_logs):
            scope = scope_logs.scope
            for k, record in enumerate(scope_logs.log_records):
                where = f"resource_logs[{i}].scope_logs[{j}].log_records[{k}]"
                try:
                    error = pdata.id_error(record.trace_id, pdata.TRACE_ID_BYTES, required=False)
                    error = f"trace_id {error}" if error else None
                    if not error and (e := pdata.id_error(record.span_id, 8, required=False)):
                        error = f"span_id {e}"
                    for name in ("time_unix_nano", "observed_time_unix_nano"):
                        if not error and (e := pdata.uint64_error(getattr(record, name))):
                            error = f"{name} {e}"
                    if error:
                        batch.reject(where, error)
                        continue
                    attrs = pdata.attributes(record.attributes)
                    body = pdata.any_value(record.body) if record.HasField("body") else None
                    event_name = record.event_name or str(attrs.get("event.name", ""))
                    trace_id = record.trace_id.hex() or None
                    span_id = record.span_id.hex() or None
                    uid = digest(
                        resource.id,
                        scope.name,
                        record.time_unix_nano,
                        record.observed_time_unix_nano,
                        trace_id,
                        span_id,
                        event_name,
                        record.severity_number,
                        canonical(body),
                        canonical(attrs),
                    )
                    log = Log(
                        uid=uid,
                        run=run,
                        resource_id=resource.id,
                        time_ns=record.time_unix_nano,
                        observed_ns=record.observed_time_unix_nano,
                        severity_number=record.severity_number,
                        severity_text=record.severity_text,
                        event_name=event_name,
                        body=body,
                        attributes=attrs,
                        trace_id=trace_id,
                        span_id=span_id,
                        scope_name=scope.name,
                        scope_version=scope.version,
                    )
                    sources = {"attributes": attrs, "": {"body": body}}
                    if images and not media.admit(batch, where, log, sources):
                        continue
                    batch.logs.append(log)
                    if event_name == semconv.EVENT_LOG:
                        if not isinstance(body, dict):
                            batch.warn(
                                where, "body of a trackio.log event must be a map of scalars"
                            )
                            continue
                        if why := steps.error(attrs.get(semconv.STEP)):
                            batch.warn(where, f"{why}; its scalars are not logged")
                            continue
                        batch.scalars.append(_scalars(log, body))
                except Exception as exc:
                    batch.fail(where, exc)
    return batch


def _record_count(resource_logs: ResourceLogs) -> int:
    return sum(len(s.log_records) for s in resource_logs.scope_logs)


def _scalars(log: Log, body: dict[str, Any]) -> Scalars:
    values = {
        (f"__{k}" if k in _RESERVED_KEYS or k.startswith("__") else k): v for k, v in body.items()
    }
    return Scalars(
        log_id=log.uid,
        run=log.run,
        time_ns=log.time_ns or log.observed_ns,
        values=values,
        step=steps.of(log.attributes.get(semconv.STEP)),
    )
