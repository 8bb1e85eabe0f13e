"""Hostile input found by fuzzing and probing (issue 10 §4): each answered OK, partial success
naming the field, or INVALID_ARGUMENT; never INTERNAL; never blocking other data.

Each test sends through a real collector on 127.0.0.1 and reads back through Trackio's own
reader or the database it wrote.
"""

from __future__ import annotations

import base64
import json
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
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from trackio.sqlite_storage import SQLiteStorage

from tests.conftest import runs, traces_of
from tests.test_collector_robustness import (
    assert_still_serving,
    new_span,
    send_raw,
    stored_span_ids,
    trace_request,
)

U64_TOP = 2**64 - 1
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0g"
    "AAAABJRU5ErkJggg=="
)


def export(endpoint: str, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
    response, _ = send_raw(endpoint, request.SerializeToString())
    return ExportTraceServiceResponse.FromString(response)


def resource_spans(request: ExportTraceServiceRequest, attrs: dict[str, str], *spans: PbSpan):
    rs = request.resource_spans.add()
    for key, value in attrs.items():
        rs.resource.attributes.add(key=key).value.string_value = value
    rs.scope_spans.add().spans.extend(spans)


def trackio_spans(project: str) -> dict[str, str | None]:
    """Span name → parent span name, as Trackio's reader shows the project's only trace."""
    (trace,) = traces_of(project)
    names = {s["id"]: s["name"] for s in trace["spans"]}
    return {s["name"]: names.get(s["parent_id"]) for s in trace["spans"]}


# --- Parent cycles ------------------------------------------------------------------------
def test_a_span_that_is_its_own_parent_is_a_root(endpoint, project, trackio_dir):
    loop = new_span("loop")
    loop.parent_span_id = loop.span_id
    child = new_span("child", trace=loop.trace_id, parent=loop.span_id)
    assert export(endpoint, trace_request(project, loop, child)) == ExportTraceServiceResponse()
    assert trackio_spans(project) == {"loop": None, "child": "loop"}
    assert_still_serving(endpoint, project, trackio_dir)


def cycle(n: int) -> list[PbSpan]:
    """``n`` spans of one trace, each the parent of the next, the last the parent of the first."""
    spans = [new_span(f"c{i}") for i in range(n)]
    for i, s in enumerate(spans):
        s.trace_id = spans[0].trace_id
        s.parent_span_id = spans[i - 1].span_id
    return spans


def test_a_parent_cycle_is_broken_at_its_earliest_span(endpoint, project, trackio_dir):
    spans = cycle(3)
    assert export(endpoint, trace_request(project, *spans)) == ExportTraceServiceResponse()
    assert trackio_spans(project) == {"c0": None, "c1": "c0", "c2": "c1"}
    assert_still_serving(endpoint, project, trackio_dir)


def test_a_cycle_formed_across_requests_gives_the_same_trace_in_any_order(endpoint):
    shown = []
    spans = cycle(2)
    for order in (spans, spans[::-1]):
        project = f"t-cycle-{len(shown)}"
        for s in order:
            assert export(endpoint, trace_request(project, s)) == ExportTraceServiceResponse()
        (trace,) = traces_of(project)
        shown.append([(s["id"], s["parent_id"]) for s in trace["spans"]])
    assert shown[0] == shown[1]
    assert shown[0] == [
        (spans[0].span_id.hex(), None),
        (spans[1].span_id.hex(), spans[0].span_id.hex()),
    ]


# --- Times past signed 64 bits ------------------------------------------------------------
def test_a_time_past_int64_rejects_its_item_by_field(endpoint, project, trackio_dir):
    late, good = new_span("late"), new_span("good")
    late.start_time_unix_nano = 2**63
    late_end = new_span("late end")
    late_end.end_time_unix_nano = U64_TOP
    partial = export(endpoint, trace_request(project, late, good, late_end)).partial_success
    assert partial.rejected_spans == 2
    assert "spans[0]: start_time_unix_nano" in partial.error_message
    assert "spans[2]: end_time_unix_nano" in partial.error_message
    assert stored_span_ids(project, trackio_dir) == {good.span_id.hex()}
    assert_still_serving(endpoint, project, trackio_dir, good)


def test_log_and_metric_times_past_int64_reject_their_items(endpoint, project, trackio_dir):
    logs = ExportLogsServiceRequest()
    rl = logs.resource_logs.add()
    rl.resource.attributes.add(key="trackio.project").value.string_value = project
    records = rl.scope_logs.add().log_records
    records.add(time_unix_nano=2**63).body.string_value = "late"
    records.add(observed_time_unix_nano=U64_TOP).body.string_value = "late observed"
    records.add(time_unix_nano=1_700_000_000_000_000_000).body.string_value = "good"

    metrics = ExportMetricsServiceRequest()
    rm = metrics.resource_metrics.add()
    rm.resource.attributes.add(key="trackio.project").value.string_value = project
    scope = rm.scope_metrics.add()
    scope.metrics.add(name="late").gauge.data_points.add(time_unix_nano=2**63, as_double=1)
    hist = scope.metrics.add(name="huge").histogram.data_points.add(time_unix_nano=1)
    hist.count = U64_TOP
    scope.metrics.add(name="good").gauge.data_points.add(time_unix_nano=1, as_double=2)

    with grpc.insecure_channel(endpoint) as channel:
        log_reply = logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs)
        metric_reply = metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(metrics)
    assert log_reply.partial_success.rejected_log_records == 2
    assert "log_records[0]: time_unix_nano" in log_reply.partial_success.error_message
    assert "log_records[1]: observed_time_unix_nano" in log_reply.partial_success.error_message
    assert metric_reply.partial_success.rejected_data_points == 2
    assert "metrics[0].data_points[0]: time_unix_nano" in metric_reply.partial_success.error_message
    assert "metrics[1].data_points[0]: count" in metric_reply.partial_success.error_message
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as conn:
        assert conn.execute("SELECT body FROM otel_logs").fetchall() == [('"good"',)]
        assert conn.execute("SELECT name FROM otel_metric_points").fetchall() == [("good",)]


# --- Deep JSON in a string attribute ------------------------------------------------------
def test_deeply_nested_json_text_is_kept_as_text(endpoint, project, trackio_dir):
    deep = new_span("deep chat")
    text = "[" * 100_000 + "]" * 100_000
    for key, value in (
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.input.messages", text),
        ("gen_ai.output.messages", "{" + '"a":{' * 5000 + "}" * 5001),
    ):
        deep.attributes.add(key=key).value.string_value = value
    tool = new_span("deep tool")
    for key, value in (
        ("gen_ai.operation.name", "execute_tool"),
        ("gen_ai.tool.call.arguments", "[" * 900 + "]" * 900),  # parses, but too deep to keep
    ):
        tool.attributes.add(key=key).value.string_value = value
    assert export(endpoint, trace_request(project, deep, tool)) == ExportTraceServiceResponse()
    traces = {t["key"]: t for t in traces_of(project)}
    (tool_span,) = traces["deep tool"]["spans"]
    assert tool_span["input"] == "[" * 900 + "]" * 900
    assert_still_serving(endpoint, project, trackio_dir, deep, tool)


def test_deeply_nested_run_config_rejects_its_resource(endpoint, project, trackio_dir):
    request = ExportTraceServiceRequest()
    bad, good = new_span("bad config"), new_span("good")
    resource_spans(request, {"trackio.project": project, "trackio.run.config": "[" * 100_000}, bad)
    resource_spans(request, {"trackio.project": project, "trackio.run.name": "ok"}, good)
    partial = export(endpoint, request).partial_success
    assert partial.rejected_spans == 1
    assert "resource.attributes[trackio.run.config]" in partial.error_message
    assert stored_span_ids(project, trackio_dir) == {good.span_id.hex()}


# --- Non-finite histogram bounds ----------------------------------------------------------
def test_non_finite_histogram_bounds_are_stored_as_trackio_writes_them(
    endpoint, project, trackio_dir
):
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.add(key="trackio.project").value.string_value = project
    metric = rm.scope_metrics.add().metrics.add(name="latency")
    dp = metric.histogram.data_points.add(time_unix_nano=1, count=3, sum=float("inf"))
    dp.explicit_bounds.extend([float("nan"), float("inf"), float("-inf")])
    dp.bucket_counts.extend([1, 1, 1, 0])
    summary = rm.scope_metrics[0].metrics.add(name="quantiles")
    sp = summary.summary.data_points.add(time_unix_nano=1, count=1, sum=1)
    sp.quantile_values.add(quantile=float("nan"), value=float("inf"))
    with grpc.insecure_channel(endpoint) as channel:
        reply = metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(request)
    assert not reply.HasField("partial_success"), reply
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as conn:
        buckets = dict(conn.execute("SELECT name, buckets FROM otel_metric_points"))
    assert json.loads(buckets["latency"])["bounds"] == ["NaN", "Infinity", "-Infinity"]
    assert json.loads(buckets["quantiles"])["quantiles"] == [{"q": "NaN", "value": "Infinity"}]


# --- Names that cannot be file names ------------------------------------------------------
def test_an_overlong_project_or_run_name_rejects_only_its_resource(endpoint, project, trackio_dir):
    request = ExportTraceServiceRequest()
    long_project, long_run, non_ascii, good = (new_span(n) for n in ("lp", "lr", "na", "good"))
    resource_spans(request, {"trackio.project": "p" * 300}, long_project)
    resource_spans(request, {"trackio.project": project, "trackio.run.name": "r" * 300}, long_run)
    resource_spans(request, {"trackio.project": "é" * 150}, non_ascii)  # 300 bytes
    resource_spans(request, {"trackio.project": project, "trackio.run.name": "fine"}, good)
    partial = export(endpoint, request).partial_success
    assert partial.rejected_spans == 3
    assert "resource_spans[0]: resource.attributes[trackio.project]" in (partial.error_message)
    assert "resource_spans[1]: resource.attributes[trackio.run.name]" in (partial.error_message)
    assert "resource_spans[2]: resource.attributes[trackio.project]" in (partial.error_message)
    assert stored_span_ids(project, trackio_dir) == {good.span_id.hex()}
    assert [r["name"] for r in runs(project)] == ["fine"]
    assert not list(trackio_dir.glob("ppppp*")) and not list(trackio_dir.glob("éé*"))


# --- Names that would leave the Trackio directory -----------------------------------------
def image_span(name: str) -> PbSpan:
    span = new_span(name)
    parts = [{"type": "blob", "modality": "image", "mime_type": "image/png", "content": PNG_B64}]
    for key, value in (
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.input.messages", json.dumps([{"role": "user", "parts": parts}])),
    ):
        span.attributes.add(key=key).value.string_value = value
    return span


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_a_run_name_with_dot_dot_keeps_its_images_inside_the_media_directory(endpoint, project):
    trackio_dir = Path(SQLiteStorage.get_project_db_path(project)).parent
    escape = "../../../../x/run"
    # Where the name would lead from media/<project>/ (its step folder goes one level deeper).
    reached = (trackio_dir / "media" / project / escape).resolve().parent
    before = set(files_under(reached))
    request = ExportTraceServiceRequest()
    resource_spans(
        request, {"trackio.project": project, "trackio.run.name": escape}, image_span("img")
    )
    assert export(endpoint, request) == ExportTraceServiceResponse()
    assert set(files_under(reached)) == before
    (run,) = runs(project)
    assert run["name"] == escape  # the run keeps its name; only its media path is made safe
    (trace,) = traces_of(project, run)
    image = trace["messages"][0]["content"][0]
    assert image["_type"] == "trackio.image"
    path = (trackio_dir / "media" / image["file_path"]).resolve()
    assert path.is_file() and (trackio_dir / "media" / project).resolve() in path.parents
    assert path.read_bytes() == base64.b64decode(PNG_B64)


def test_an_odd_image_type_cannot_make_an_overlong_or_escaping_file_name(
    endpoint, project, trackio_dir
):
    span = image_span("odd mime")
    messages = json.loads(span.attributes[1].value.string_value)
    messages[0]["parts"][0]["mime_type"] = "image/" + "x" * 300
    messages[0]["parts"].append(dict(messages[0]["parts"][0], mime_type="image/.."))
    span.attributes[1].value.string_value = json.dumps(messages)
    assert export(endpoint, trace_request(project, span)) == ExportTraceServiceResponse()
    (trace,) = traces_of(project)
    for item in trace["messages"][0]["content"]:
        path = trackio_dir / "media" / item["file_path"]
        assert path.is_file() and len(path.name) <= 64, path.name
