"""ExportTraceServiceRequest → Batch of validated span records."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from trackio_otel import semconv
from trackio_otel.translate import pdata, steps
from trackio_otel.translate.conventions import media
from trackio_otel.translate.identity import placed
from trackio_otel.translate.model import Batch, Run, Span


def from_request(request: ExportTraceServiceRequest, images: bool = True) -> Batch:
    """``images``: whether the request may carry inline images (``media.may_hold_images``);
    only then are its spans' images counted against the media limits."""
    batch = Batch()
    for i, resource_spans, resource, run in placed(
        batch, request.resource_spans, "resource_spans", _span_count
    ):
        for j, scope_spans in enumerate(resource_spans.scope_spans):
            # Each read of a protobuf field builds a new Python object: read every one once.
            scope_name, scope_version = scope_spans.scope.name, scope_spans.scope.version
            for k, span in enumerate(scope_spans.spans):
                where = f"resource_spans[{i}].scope_spans[{j}].spans[{k}]"
                try:
                    if error := _error(span):
                        batch.reject(where, error)
                        continue
                    record = _span(span, run, resource.id, scope_name, scope_version)
                    if semconv.STEP in record.attributes and (
                        why := steps.error(record.attributes[semconv.STEP])
                    ):
                        batch.warn(where, f"{why}; ignored")
                    if images and not media.admit(batch, where, record, _sources(record)):
                        continue
                    batch.spans.append(record)
                except Exception as exc:
                    batch.fail(where, exc)
    return batch


def _span_count(resource_spans: ResourceSpans) -> int:
    return sum(len(s.spans) for s in resource_spans.scope_spans)


def _error(span: PbSpan) -> str | None:
    """Why the span cannot be stored, naming the field, or None."""
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    return (
        _field("trace_id", pdata.id_error(span.trace_id, pdata.TRACE_ID_BYTES, required=True))
        or _field("span_id", pdata.id_error(span.span_id, pdata.SPAN_ID_BYTES, required=True))
        or _field(
            "parent_span_id",
            pdata.id_error(span.parent_span_id, pdata.SPAN_ID_BYTES, required=False),
        )
        or _field("start_time_unix_nano", pdata.uint64_error(start))
        or _field("end_time_unix_nano", pdata.uint64_error(end))
    )


def _span(span: PbSpan, run: Run, resource_id: str, scope_name: str, scope_version: str) -> Span:
    status = span.status
    return Span(
        run=run,
        resource_id=resource_id,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() or None,
        name=span.name,
        kind=span.kind,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status_code=status.code,
        status_message=status.message,
        attributes=pdata.attributes(span.attributes),
        events=_events(span),
        links=_links(span),
        scope_name=scope_name,
        scope_version=scope_version,
        trace_state=span.trace_state,
    )


def _sources(record: Span) -> dict[str, dict[str, Any]]:
    """Where a span's inline images can be: its attributes and its events' attributes."""
    sources = {"attributes": record.attributes}
    for n, event in enumerate(record.events):
        sources[f"events[{n}].attributes"] = event["attributes"]
    return sources


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
