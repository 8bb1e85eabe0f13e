"""``trackio.step``, read one way everywhere (``translate.steps``): a bool is not a step, a
fraction is not truncated, and a step past ``MAX_STEP`` is refused with a message that names
the field, so it can never make later data of its run fail."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from trackio.sqlite_storage import SQLiteStorage

from tests.conftest import only_run, traces_of
from trackio_otel import semconv
from trackio_otel.translate import steps

T0 = 1_700_000_000_000_000_000
INT64_MAX = 2**63 - 1


@pytest.mark.parametrize(
    ("value", "step"),
    [(None, None), (0, 0), (120, 120), (12.0, 12), ("12", 12), ("-3", -3), (semconv.MAX_STEP,) * 2],
)
def test_what_is_a_step(value, step):
    assert steps.parse(value) == step


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (True, "not the bool True"),
        (False, "not the bool False"),
        (12.5, "not 12.5"),
        (float("nan"), "not nan"),
        (float("inf"), "not inf"),
        ("1_000", "not the string '1_000'"),
        ("12.0", "not the string '12.0'"),
        ("", "not the string ''"),
        ([1], "not a list"),
        (b"1", "not a bytes"),
        (semconv.MAX_STEP + 1, "beyond"),
        (INT64_MAX, "beyond"),
        (-INT64_MAX, "beyond"),
        (1e300, "beyond"),
    ],
)
def test_what_is_not_a_step(value, why):
    with pytest.raises(ValueError, match=why):
        steps.parse(value)
    assert steps.of(value) is None
    assert steps.error(value).startswith("attributes[trackio.step]: ")


def _span(n: int, attrs: dict[str, AnyValue]) -> PbSpan:
    span = PbSpan(
        trace_id=n.to_bytes(16, "big"),
        span_id=(n | 1 << 60).to_bytes(8, "big"),
        name=f"trace-{n}",
        start_time_unix_nano=T0 + n,
        end_time_unix_nano=T0 + n + 1000,
    )
    for key, value in attrs.items():
        span.attributes.add(key=key).value.CopyFrom(value)
    return span


def _export_spans(endpoint: str, project: str, *spans: PbSpan):
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="trackio.project").value.string_value = project
    rs.resource.attributes.add(key="trackio.run.name").value.string_value = "steps"
    rs.scope_spans.add().spans.extend(spans)
    with grpc.insecure_channel(endpoint) as channel:
        return trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=30)


def test_a_huge_step_never_poisons_later_step_less_traces_of_its_run(endpoint, project):
    """Issue 10: ``trackio.step = 2^63-1`` was answered OK, then every later step-less trace
    of the run failed with INTERNAL OverflowError (the store numbers those 1 + the highest)."""
    huge = _export_spans(endpoint, project, _span(1, {semconv.STEP: AnyValue(int_value=INT64_MAX)}))
    assert huge.partial_success.rejected_spans == 0  # the span itself is kept
    assert "spans[0]: attributes[trackio.step]" in huge.partial_success.error_message
    assert "beyond" in huge.partial_success.error_message

    later = _export_spans(endpoint, project, _span(2, {}))  # raised INTERNAL before the fix
    assert not later.HasField("partial_success"), later
    stepped = _export_spans(endpoint, project, _span(3, {semconv.STEP: AnyValue(int_value=7)}))
    assert not stepped.HasField("partial_success"), stepped
    again = _export_spans(endpoint, project, _span(4, {}))
    assert not again.HasField("partial_success"), again

    by_key = {t["key"]: t["step"] for t in traces_of(project)}
    assert by_key == {"trace-1": 0, "trace-2": 1, "trace-3": 7, "trace-4": 8}


def test_string_steps_parse_and_bool_steps_are_ignored_on_spans(endpoint, project):
    string = _export_spans(
        endpoint, project, _span(11, {semconv.STEP: AnyValue(string_value="40")})
    )
    assert not string.HasField("partial_success"), string
    boolean = _export_spans(endpoint, project, _span(12, {semconv.STEP: AnyValue(bool_value=True)}))
    assert "spans[0]: attributes[trackio.step]: trackio.step must be an integer, not the bool" in (
        boolean.partial_success.error_message
    )
    assert {t["key"]: t["step"] for t in traces_of(project)} == {"trace-11": 40, "trace-12": 41}


def _log_request(project: str, step: AnyValue) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.add(key="trackio.project").value.string_value = project
    rl.resource.attributes.add(key="trackio.run.name").value.string_value = "steps"
    record = rl.scope_logs.add().log_records.add(time_unix_nano=T0, event_name=semconv.EVENT_LOG)
    record.body.kvlist_value.values.add(key="loss").value.double_value = 0.5
    record.attributes.add(key=semconv.STEP).value.CopyFrom(step)
    return request


def test_a_bool_step_on_a_trackio_log_event_is_refused_by_name_not_logged_at_step_1(
    endpoint, project
):
    """``logs.py`` used to accept ``trackio.step=True`` as step 1."""
    with grpc.insecure_channel(endpoint) as channel:
        stub = logs_service_pb2_grpc.LogsServiceStub(channel)
        bad = stub.Export(_log_request(project, AnyValue(bool_value=True)), timeout=30)
        good = stub.Export(_log_request(project, AnyValue(int_value=3)), timeout=30)
    assert bad.partial_success.rejected_log_records == 0  # the record itself is kept
    assert "log_records[0]: attributes[trackio.step]" in bad.partial_success.error_message
    assert not good.HasField("partial_success"), good
    run = only_run(project)
    logged = SQLiteStorage.get_logs(project, run["name"], run_id=run["id"])
    assert [(row["step"], row.get("loss")) for row in logged if "loss" in row] == [(3, 0.5)]


def test_a_metric_point_past_the_bound_makes_no_metrics_row(endpoint, project):
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.add(key="trackio.project").value.string_value = project
    rm.resource.attributes.add(key="trackio.run.name").value.string_value = "steps"
    gauge = rm.scope_metrics.add().metrics.add(name="train/loss").gauge
    for step, value in ((INT64_MAX, 0.1), (5, 0.2)):
        dp = gauge.data_points.add(time_unix_nano=T0 + step % 1000, as_double=value)
        dp.attributes.add(key=semconv.STEP).value.int_value = step
    with grpc.insecure_channel(endpoint) as channel:
        response = metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(request, timeout=30)
    assert "metrics[0].data_points[0]: attributes[trackio.step]" in (
        response.partial_success.error_message
    )
    run = only_run(project)
    logged = SQLiteStorage.get_logs(project, run["name"], run_id=run["id"])
    assert [(row["step"], row["train/loss"]) for row in logged if "train/loss" in row] == [(5, 0.2)]
