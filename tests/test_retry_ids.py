"""A retry through a relay that reorders attributes (OTLP attributes and kvlists are maps)
must not duplicate rows: log-record, data-point and resource ids hash a canonical form."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from trackio.sqlite_storage import SQLiteStorage

from tests.conftest import only_run
from trackio_otel import semconv

T0 = 1_700_000_000_000_000_000


def _pairs(project: str, order: int) -> tuple[list[KeyValue], list[KeyValue], list[KeyValue]]:
    """Resource, record and nested-map attributes, forwards (order 1) or reversed (-1)."""
    resource = [
        KeyValue(key="trackio.project"),
        KeyValue(key="trackio.run.name"),
        KeyValue(key="service.name"),
    ]
    for kv, value in zip(resource, (project, "relay", "svc"), strict=True):
        kv.value.string_value = value
    record = [KeyValue(key=k) for k in ("a", "b", semconv.STEP, "nested")]
    record[0].value.string_value = "x"
    record[1].value.int_value = 2
    record[2].value.int_value = 4
    inner = record[3].value.kvlist_value.values
    inner.add(key="p").value.int_value = 1
    inner.add(key="q").value.int_value = 2
    if order < 0:
        inner.reverse()
    body = [KeyValue(key="loss"), KeyValue(key="lr")]
    body[0].value.double_value, body[1].value.double_value = 0.5, 0.001
    return resource[::order], record[::order], body[::order]


def _logs(project: str, order: int) -> ExportLogsServiceRequest:
    resource, attrs, body = _pairs(project, order)
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.extend(resource)
    record = rl.scope_logs.add().log_records.add(time_unix_nano=T0, event_name=semconv.EVENT_LOG)
    record.attributes.extend(attrs)
    record.body.kvlist_value.values.extend(body)
    return request


def _metrics(project: str, order: int) -> ExportMetricsServiceRequest:
    resource, attrs, _ = _pairs(project, order)
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend(resource)
    scope = rm.scope_metrics.add()
    stepped = scope.metrics.add(name="train/accuracy").gauge.data_points.add(
        time_unix_nano=T0, as_double=0.9
    )
    stepped.attributes.extend(attrs)
    unstepped = scope.metrics.add(name="queue.depth").gauge.data_points.add(
        time_unix_nano=T0, as_int=3
    )
    unstepped.attributes.extend(a for a in attrs if a.key != semconv.STEP)
    return request


def _count(trackio_dir: Path, project: str, table: str) -> int:
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_a_reordered_retry_of_logs_and_metrics_stores_nothing_twice(endpoint, project, trackio_dir):
    with grpc.insecure_channel(endpoint) as channel:
        logs = logs_service_pb2_grpc.LogsServiceStub(channel)
        points = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        for order in (1, -1):  # the original, then the relay's reordered retry
            assert not logs.Export(_logs(project, order), timeout=30).HasField("partial_success")
            assert not points.Export(_metrics(project, order), timeout=30).HasField(
                "partial_success"
            )

    assert _count(trackio_dir, project, "otel_resources") == 1
    assert _count(trackio_dir, project, "otel_logs") == 1
    assert _count(trackio_dir, project, "otel_metric_points") == 2
    run = only_run(project)
    rows = SQLiteStorage.get_logs(project, run["name"], run_id=run["id"])
    at_4 = [row for row in rows if row["step"] == 4]
    assert sorted(key for row in at_4 for key in row if key in ("loss", "train/accuracy")) == [
        "loss",
        "train/accuracy",
    ]
    system = SQLiteStorage.get_system_logs(project, run["name"], run_id=run["id"])
    assert [row["queue.depth"] for row in system if "queue.depth" in row] == [3]
