"""The resource → run step every translator shares (``identity.placed``), pure: a resource
that names no valid run rejects exactly its own items, once and by the attribute, and the
entries around it are translated as if it were not there."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trackio_otel.translate import logs, metrics, spans

GOOD, BAD = "good-project", "reserved_system"  # Trackio keeps *_system for its own files


def _spans(request: ExportTraceServiceRequest, project: str, n: int) -> None:
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="trackio.project").value.string_value = project
    for scope in range(2):  # items of every scope count
        for k in range(n):
            rs.scope_spans.add().spans.add(
                trace_id=bytes([1 + scope] * 16), span_id=bytes([1 + k] * 8), name="s"
            )


def _logs(request: ExportLogsServiceRequest, project: str, n: int) -> None:
    rl = request.resource_logs.add()
    rl.resource.attributes.add(key="trackio.project").value.string_value = project
    for scope in range(2):
        for k in range(n):
            rl.scope_logs.add().log_records.add(time_unix_nano=1 + k + 10 * scope)


def _metrics(request: ExportMetricsServiceRequest, project: str, n: int) -> None:
    rm = request.resource_metrics.add()
    rm.resource.attributes.add(key="trackio.project").value.string_value = project
    for scope in range(2):
        gauge = rm.scope_metrics.add().metrics.add(name="m").gauge
        for k in range(n):
            gauge.data_points.add(time_unix_nano=1 + k + 10 * scope, as_double=k)
    rm.scope_metrics[0].metrics.add(name="no data")  # a metric without data has no points


@pytest.mark.parametrize(
    ("request_type", "add", "translate", "records"),
    [
        (ExportTraceServiceRequest, _spans, spans.from_request, "spans"),
        (ExportLogsServiceRequest, _logs, logs.from_request, "logs"),
        (ExportMetricsServiceRequest, _metrics, metrics.from_request, "points"),
    ],
    ids=["spans", "logs", "metrics"],
)
def test_an_unplaceable_resource_rejects_only_its_own_items(request_type, add, translate, records):
    request = request_type()
    add(request, GOOD, 1)
    add(request, BAD, 3)
    add(request, GOOD, 2)
    batch = translate(request)
    assert batch.rejected == 2 * 3
    (error,) = batch.errors
    field = request.DESCRIPTOR.fields[0].name  # resource_spans / resource_logs / ...
    assert error.startswith(f"{field}[1]: resource.attributes[trackio.project]: ")
    assert "reserved suffix '_system'" in error
    kept = getattr(batch, records)
    assert len(kept) == 2 * 1 + 2 * 2
    assert {r.run.project for r in kept} == {GOOD}
    assert len(batch.resources) == 1  # both good resources are the same resource
