"""ExportTraceServiceRequest → Batch of validated span records."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from trackio_otel import semconv
from trackio_otel.translate import pdata, steps
from trackio_otel.translate.identity import placed
from trackio_otel.translate.model import Batch, Span


def from_request(request: ExportTraceServiceRequest) -> Batch:
    batch = Batch()
    for i, resource_spans, resource, run in placed(
        batch, request.resource_spans, "resource_spans", _span_count
    ):
        for j, scope_spans in enumerate(resource_spans.scope_spans):
            # Each read of a protobuf field builds a new Python object: read every one once.
            scope_name, scope_version = scope_spans.scope.name, scope_spans.scope.version
            for k, span in enumerate(scope_spans.spans):
                trace_id, span_id, parent_id = span.trace_id, span.span_id, span.parent_span_id
                error = (
                    _field(
                        "trace_id", pdata.id_error(trace_id, pdata.TRACE_ID_BYTES, required=True)
                    )
                    or _field(
                        "span_id", pdata.id_error(span_id, pdata.SPAN_ID_BYTES, required=True)
                    )
                    or _field(
                        "parent_span_id",
                        pdata.id_error(parent_id, pdata.SPAN_ID_BYTES, required=False),
                    )
                    or _field("start_time_unix_nano", pdata.uint64_error(span.start_time_unix_nano))
                    or _field("end_time_unix_nano", pdata.uint64_error(span.end_time_unix_nano))
                )
                if error:
                    batch.reject(f"resource_spans[{i}].scope_spans[{j}].spans[{k}]", error)
                    continue
                status = span.status
                attrs = pdata.attributes(span.attributes)
                if semconv.STEP in attrs and (why := steps.error(attrs[semconv.STEP])):
                    batch.warn(
                        f"resource_spans[{i}].scope_spans[{j}].spans[{k}]", f"{why}; ignored"
                    )
                batch.spans.append(
                    Span(
                        run=run,
                        resource_id=resource.id,
                        trace_id=trace_id.hex(),
                        span_id=span_id.hex(),
                        parent_span_id=parent_id.hex() or None,
                        name=span.name,
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=status.code,
                        status_message=status.message,
                        attributes=attrs,
                        events=_events(span),
                        links=_links(span),
                        scope_name=scope_name,
                        scope_version=scope_version,
                        trace_state=span.trace_state,
                    )
                )
    return batch


def _span_count(resource_spans: ResourceSpans) -> int:
    return sum(len(s.spans) for s in resource_spans.scope_spans)


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
