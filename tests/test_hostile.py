"""Hostile input found by fuzzing and probing (issue 10 §4): each answered OK, partial success
naming the field, or INVALID_ARGUMENT; never INTERNAL; never blocking other data.

Each test sends through a real collector on 127.0.0.1 and reads back through Trackio's own
reader or the database it wrote.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import grpc
import pytest
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

from tests.conftest import local_config, runs, traces_of
from tests.test_collector_robustness import (
    assert_still_serving,
    new_span,
    send_raw,
    stored_span_ids,
    trace_request,
)
from trackio_otel.collector import Collector
from trackio_otel.translate.conventions import media
from trackio_otel.translate.model import Batch

U64_TOP = 2**64 - 1
MIB = 1 << 20
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


def test_a_run_name_with_dot_dot_keeps_its_images_inside_the_media_directory(tmp_path, project):
    trackio_dir = tmp_path / "d1" / "d2" / "d3" / "trackio"  # where ../../../.. would land: inside
    config = local_config(trackio_dir, http_endpoint=None)
    request = ExportTraceServiceRequest()
    escape = "../../../../x/run"
    attrs = {"trackio.project": project, "trackio.run.name": escape}
    resource_spans(request, attrs, image_span("img"))
    with Collector(config) as c:
        assert export(f"127.0.0.1:{c.port}", request) == ExportTraceServiceResponse()
    assert all(trackio_dir in p.parents for p in files_under(tmp_path))
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as conn:
        ((run_name, messages),) = conn.execute("SELECT run_name, messages FROM traces").fetchall()
    assert run_name == escape  # the run keeps its name; only its media path is made safe
    image = json.loads(messages)[0]["content"][0]
    assert image["_type"] == "trackio.image"
    path = trackio_dir / "media" / image["file_path"]
    assert path.resolve().parent.parent.parent == (trackio_dir / "media" / project).resolve()
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


# --- Media bounds ---------------------------------------------------------------------------
def image_of(name: str, size: int) -> PbSpan:
    """A chat span whose input carries one image of ``size`` random bytes (a blob part)."""
    span = image_span(name)
    messages = json.loads(span.attributes[1].value.string_value)
    messages[0]["parts"][0]["content"] = base64.b64encode(os.urandom(size)).decode()
    span.attributes[1].value.string_value = json.dumps(messages)
    return span


def test_a_request_past_its_media_limit_rejects_the_spans_that_cross_it(
    endpoint, project, trackio_dir
):
    per_image = 7 * MIB
    spans = [image_of(f"img{i}", per_image) for i in range(5)]  # 35 MiB > 32 MiB
    plain = new_span("no image")
    partial = export(endpoint, trace_request(project, *spans, plain)).partial_success
    assert partial.rejected_spans == 1
    assert (
        "spans[4]: attributes[gen_ai.input.messages] image 1 (7.0 MiB) refused: the request's "
        "inline images would total 35.0 MiB, over the 32 MiB limit per request"
    ) in partial.error_message
    assert stored_span_ids(project, trackio_dir) == {s.span_id.hex() for s in [*spans[:4], plain]}
    assert sum(f.stat().st_size for f in files_under(trackio_dir / "media" / project)) == (
        4 * per_image
    )


@pytest.fixture
def quota_collector(trackio_dir: Path, monkeypatch) -> Iterator[str]:
    """A collector whose writer processes allow each project 1 MiB of media."""
    monkeypatch.setenv("TRACKIO_OTEL_PROJECT_MEDIA_MIB", "1")
    config = local_config(trackio_dir, http_endpoint=None)
    with Collector(config) as c:
        yield f"127.0.0.1:{c.port}"


def test_a_project_past_its_media_quota_refuses_further_images(
    quota_collector, project, trackio_dir
):
    endpoint = quota_collector
    first, second, third = (image_of(f"img{i}", 400 << 10) for i in range(3))
    assert export(endpoint, trace_request(project, first)) == ExportTraceServiceResponse()
    plain = new_span("no image")
    partial = export(endpoint, trace_request(project, second, third, plain)).partial_success
    assert partial.rejected_spans == 1
    assert "spans[1]: attributes[gen_ai.input.messages] image 1 (0.4 MiB) refused: project " in (
        partial.error_message
    )
    assert "over its quota of 1 MiB (TRACKIO_OTEL_PROJECT_MEDIA_MIB)" in partial.error_message
    assert stored_span_ids(project, trackio_dir) == {
        s.span_id.hex() for s in (first, second, plain)
    }
    later = export(endpoint, trace_request(project, image_of("later", 400 << 10)))
    assert later.partial_success.rejected_spans == 1  # a later request too, until space is freed
    assert_still_serving(endpoint, project, trackio_dir)
    elsewhere = f"{project}-other"  # the quota is per project
    assert export(endpoint, trace_request(elsewhere, image_of("other", 400 << 10))) == (
        ExportTraceServiceResponse()
    )


# --- One bad item, not the request --------------------------------------------------------
def test_a_span_a_convention_cannot_read_does_not_fail_its_trace(endpoint, project, trackio_dir):
    """Token counts that are not numbers made reading the span raise, in the store: every
    request adding to that trace then failed INTERNAL."""
    odd = new_span("odd usage")
    for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.usage.input_tokens", "lots")):
        odd.attributes.add(key=key).value.string_value = value
    child = new_span("child", trace=odd.trace_id, parent=odd.span_id)
    assert export(endpoint, trace_request(project, odd)) == ExportTraceServiceResponse()
    assert export(endpoint, trace_request(project, child)) == ExportTraceServiceResponse()
    assert trackio_spans(project) == {"odd usage": None, "child": "odd usage"}


def test_batch_fail_rejects_the_item_that_raised_and_keeps_going():
    batch = Batch()
    for n in range(3):
        try:
            if n == 1:
                raise KeyError("boom")
            batch.warn(f"items[{n}]", "kept")
        except KeyError as exc:
            batch.fail(f"items[{n}]", exc)
    assert batch.rejected == 1
    assert batch.errors == [
        "items[0]: kept",
        "items[1]: could not be translated (KeyError: 'boom')",
        "items[2]: kept",
    ]


def test_inline_images_are_counted_however_the_json_spells_them():
    payload = base64.b64encode(b"x" * 6000).decode()
    escaped = json.dumps([{"parts": [{"type": "blob", "content": payload}]}]).replace(
        '"blob"', '"bl\\u006fb"'
    )
    values = {"messages": escaped, "url": "DATA:image/png;base64," + payload, "plain": "blob-free"}
    assert media.may_hold_images(escaped.encode()) and not media.may_hold_images(b"plain text")
    assert media.inline_images("attributes", values) == [
        ("attributes[messages] image 1", 6000),
        ("attributes[url] image 1", 6000),
    ]


def test_a_tool_call_id_that_is_not_text_still_pairs_its_tool_span(endpoint, project):
    """An array as ``gen_ai.tool.call.id`` made trace assembly raise (unhashable)."""
    tool = new_span("odd tool")
    tool.attributes.add(key="gen_ai.operation.name").value.string_value = "execute_tool"
    ids = tool.attributes.add(key="gen_ai.tool.call.id").value.array_value.values
    ids.add().string_value = "call-1"
    numbered = new_span("numbered tool", trace=tool.trace_id, parent=tool.span_id)
    numbered.attributes.add(key="gen_ai.operation.name").value.string_value = "execute_tool"
    numbered.attributes.add(key="gen_ai.tool.call.id").value.int_value = 7
    assert export(endpoint, trace_request(project, tool, numbered)) == ExportTraceServiceResponse()
    (trace,) = traces_of(project)
    assert {s["name"]: s["id"] for s in trace["spans"]} == {
        "odd tool": "['call-1']",
        "numbered tool": "7",
    }


def test_costs_that_overflow_when_summed_do_not_fail_the_trace(endpoint, project):
    """Two generations costing 1e308 each summed to inf, which the JSON encoder refuses."""
    spans = [new_span(f"gen{i}") for i in range(2)]
    for s in spans:
        s.trace_id = spans[0].trace_id
        s.attributes.add(key="gen_ai.operation.name").value.string_value = "chat"
        s.attributes.add(key="gen_ai.usage.cost").value.double_value = 1e308
    assert export(endpoint, trace_request(project, *spans)) == ExportTraceServiceResponse()
    (trace,) = traces_of(project)
    assert trace["metadata"]["cost_usd"] == float("inf")  # Trackio reads its "Infinity" back


def test_a_point_after_a_rejected_one_is_named_by_its_own_index(endpoint, project):
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.add(key="trackio.project").value.string_value = project
    gauge = rm.scope_metrics.add().metrics.add(name="loss").gauge
    gauge.data_points.add(time_unix_nano=2**63, as_double=1)
    odd_step = gauge.data_points.add(time_unix_nano=1, as_double=2)
    odd_step.attributes.add(key="trackio.step").value.double_value = 1.5
    with grpc.insecure_channel(endpoint) as channel:
        reply = metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(request)
    message = reply.partial_success.error_message
    assert "metrics[0].data_points[0]: time_unix_nano" in message
    assert "metrics[0].data_points[1]: attributes[trackio.step]" in message, message


def test_an_operation_name_that_is_not_text_is_read_as_no_operation(endpoint, project):
    """``gen_ai.operation.name`` / ``ai.operationId`` as an array made the convention raise."""
    genai, vercel = new_span("genai"), new_span("vercel")
    vercel.trace_id = genai.trace_id
    for span, key in ((genai, "gen_ai.operation.name"), (vercel, "ai.operationId")):
        span.attributes.add(key=key).value.array_value.values.add().string_value = "chat"
    assert export(endpoint, trace_request(project, genai, vercel)) == ExportTraceServiceResponse()
    (trace,) = traces_of(project)
    assert [s["kind"] for s in trace["spans"]] == ["span", "span"]
    assert not [s for s in trace["spans"] if "trackio_otel_error" in s["metadata"]]
