"""ExportTraceServiceRequest → Batch of validated span records."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trackio_otel.translate import pdata
from trackio_otel.translate.identity import resource_of, run_for
from trackio_otel.translate.model import Batch, Span


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
            scope = scope_spans.scope
            for k, span in enumerate(scope_spans.spans):
                error = (
                    _field(
                        "trace_id",
                        pdata.id_error(span.trace_id, pdata.TRACE_ID_BYTES, required=True),
                    )
                    or _field(
                        "span_id", pdata.id_error(span.span_id, pdata.SPAN_ID_BYTES, required=True)
                    )
                    or _field(
                        "parent_span_id",
                        pdata.id_error(span.parent_span_id, pdata.SPAN_ID_BYTES, required=False),
                    )
                )
                if error:
                    batch.reject(f"resource_spans[{i}].scope_spans[{j}].spans[{k}]", error)
                    continue
                batch.spans.append(
                    Span(
                        run=run,
                        resource_id=resource.id,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        kind=span.kind,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=span.status.code,
                        status_message=span.status.message,
                        attributes=pdata.attributes(span.attributes),
                        events=[
                            {
                                "name": e.name,
                                "time_unix_nano": e.time_unix_nano,
                                "attributes": pdata.attributes(e.attributes),
                            }
                            for e in span.events
                        ],
                        links=[
                            {
                                "trace_id": link.trace_id.hex(),
                                "span_id": link.span_id.hex(),
                                "attributes": pdata.attributes(link.attributes),
                            }
                            for link in span.links
                        ],
                        scope_name=scope.name,
                        scope_version=scope.version,
                        trace_state=span.trace_state,
                    )
                )
    return batch


def _field(name: str, error: str | None) -> str | None:
    return f"{name} {error}" if error else None
