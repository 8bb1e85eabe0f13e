"""ExportTraceServiceRequest → Batch of validated span records."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from trackio_otel.translate import pdata
from trackio_otel.translate.conventions import media
from trackio_otel.translate.identity import resource_of, run_for
from trackio_otel.translate.model import Batch, Run, Span


def from_request(request: ExportTraceServiceRequest) -> Batch:
    batch = Batch()
    for i, resource_spans in enumerate(request.resource_spans):
        resource = resource_of(resource_spans.resource, resource_spans.schema_url)
        try:
            run = run_for(resource.attributes)
        except ValueError as exc:
            for j, scope_spans in enumerate(resource_spans.scope_spans):
                for _ in scope_spans.spans:
                    batch.reject(f"resource_spans[{i}].scope_spans[{j}]", str(exc))
            continue
        batch.resources[resource.id] = resource
        for j, scope_spans in enumerate(resource_spans.scope_spans):
            # Each read of a protobuf field builds a new Python object: read every one once.
            scope_name, scope_version = scope_spans.scope.name, scope_spans.scope.version
            for k, span in enumerate(scope_spans.spans):
                where = f"resource_spans[{i}].scope_spans[{j}].spans[{k}]"
                try:
                    if record := _span(
                        span, run, resource.id, scope_name, scope_version, batch, where
                    ):
                        batch.spans.append(record)
                except Exception as exc:
                    batch.fail(where, exc)
    return batch


def _span(
    span: PbSpan,
    run: Run,
    resource_id: str,
    scope_name: str,
    scope_version: str,
    batch: Batch,
    where: str,
) -> Span | None:
    """The span's record, or None once rejected into ``batch`` (why, named by field)."""
    trace_id, span_id, parent_id = span.trace_id, span.span_id, span.parent_span_id
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    error = (
        _field("trace_id", pdata.id_error(trace_id, pdata.TRACE_ID_BYTES, required=True))
        or _field("span_id", pdata.id_error(span_id, pdata.SPAN_ID_BYTES, required=True))
        or _field("parent_span_id", pdata.id_error(parent_id, pdata.SPAN_ID_BYTES, required=False))
    )
    if not error and (start > pdata.MAX_INT64 or end > pdata.MAX_INT64):
        error = _field("start_time_unix_nano", pdata.uint64_error(start)) or _field(
            "end_time_unix_nano", pdata.uint64_error(end)
        )
    if error:
        batch.reject(where, error)
        return None
    status = span.status
    record = Span(
        run=run,
        resource_id=resource_id,
        trace_id=trace_id.hex(),
        span_id=span_id.hex(),
        parent_span_id=parent_id.hex() or None,
        name=span.name,
        kind=span.kind,
        start_ns=start,
        end_ns=end,
        status_code=status.code,
        status_message=status.message,
        attributes=pdata.attributes(span.attributes),
        events=_events(span),
        links=_links(span),
        scope_name=scope_name,
        scope_version=scope_version,
        trace_state=span.trace_state,
    )
    sources = {"attributes": record.attributes}
    for n, event in enumerate(record.events):
        sources[f"events[{n}].attributes"] = event["attributes"]
    return record if media.admit(batch, where, record, sources) else None


def _field(name: str, error: str | None) -> str | None:
    return f"{name} {error}" if error else None


def _events(span: PbSpan) -> list[dict[str, Any]]:
    if not span.events:  # most spans have none: cheaper than running the comprehension empty
        return []
    return [
        {
            "name": e.name,
            "time_unix_nano": e.time_unix_nano,
            "attributes": pdata.attributes(e.attributes),
        }
        for e in span.events
    ]


def _links(span: PbSpan) -> list[dict[str, Any]]:
    if not span.links:  # most spans have none: cheaper than running the comprehension empty
        return []
    return [
        {
            "trace_id": link.trace_id.hex(),
            "span_id": link.span_id.hex(),
            "attributes": pdata.attributes(link.attributes),
        }
        for link in span.links
    ]
