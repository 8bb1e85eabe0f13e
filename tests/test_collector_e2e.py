"""End to end: real OTel SDK exporters and raw OTLP requests → the collector over gRPC →
Trackio's own reader, dashboard API and SQLite file.

Why: "shows up in Trackio" is judged by Trackio itself, so every check reads back through
``SQLiteStorage`` (or the dashboard's HTTP API), never through our own store.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import grpc
import pytest
import requests
import trackio
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from trackio.sqlite_storage import SQLiteStorage

from tests.conftest import AGENT_ROLES, free_port, load_fixture, only_run, runs, traces_of

GIB = 1 << 30
RUN_CONFIG = {"lr": 0.001, "model": "tiny", "layers": [4, 4]}
TOOL_CALL_ID = "call_lookup_1"


def sdk_resource(project: str, run_name: str) -> Resource:
    return Resource.create(
        {
            "service.name": "e2e-agent",
            "trackio.project": project,
            "trackio.run.name": run_name,
            "trackio.run.config": json.dumps(RUN_CONFIG),
        }
    )


def parts(role: str, *items: dict) -> dict:
    return {"role": role, "parts": list(items)}


def emit_agent_trace(provider: TracerProvider) -> dict[str, str]:
    """An agent turn as GenAI instrumentations emit it; returns span name → span id hex."""
    tracer = provider.get_tracer("e2e.genai")
    user = parts("user", {"type": "text", "content": "look up x"})
    call = parts(
        "assistant",
        {"type": "tool_call", "id": TOOL_CALL_ID, "name": "lookup", "arguments": {"q": "x"}},
    )
    result = parts("tool", {"type": "tool_call_response", "id": TOOL_CALL_ID, "response": "42"})
    answer = parts("assistant", {"type": "text", "content": "x is 42"})
    ids = {}

    def chat(name: str, history: list[dict], output: dict, tokens: tuple[int, int]) -> None:
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-test",
            "gen_ai.response.model": "gpt-test-2025",
            "gen_ai.input.messages": json.dumps(history),
            "gen_ai.output.messages": json.dumps([output]),
            "gen_ai.usage.input_tokens": tokens[0],
            "gen_ai.usage.output_tokens": tokens[1],
        }
        with tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attrs) as span:
            ids[name] = format(span.get_span_context().span_id, "016x")

    root_attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Helper"}
    with tracer.start_as_current_span("invoke_agent Helper", attributes=root_attrs) as root:
        ids["invoke_agent Helper"] = format(root.get_span_context().span_id, "016x")
        chat("chat first", [user], call, (10, 5))
        tool_attrs = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "lookup",
            "gen_ai.tool.call.id": TOOL_CALL_ID,
            "gen_ai.tool.call.arguments": '{"q":"x"}',
            "gen_ai.tool.call.result": "42",
        }
        with tracer.start_as_current_span("execute_tool lookup", attributes=tool_attrs) as tool:
            ids["execute_tool lookup"] = format(tool.get_span_context().span_id, "016x")
        chat("chat second", [user, call, result], answer, (20, 7))
    return ids


def emit_metrics(exporter: MetricExporter, resource: Resource) -> None:
    """GPU 0 at 75% with 2 GiB allocated, 3 GiB host memory used, as observable gauges."""

    def gauge(value: float, attrs: dict):
        def observe(_: CallbackOptions) -> list[Observation]:
            return [Observation(value, attrs)]

        return observe

    gpu = {"hw.id": "GPU-0000-uuid", "hw.type": "gpu", "trackio.gpu.index": 0}
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("e2e.system")
    meter.create_observable_gauge("hw.gpu.utilization", [gauge(0.75, gpu)], unit="1")
    meter.create_observable_gauge("hw.gpu.memory.usage", [gauge(2 * GIB, gpu)], unit="By")
    meter.create_observable_gauge(
        "system.memory.usage", [gauge(3 * GIB, {"system.memory.state": "used"})], unit="By"
    )
    provider.shutdown()  # collects and exports once


def emit_step_logs(exporter: LogRecordExporter, resource: Resource) -> None:
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("e2e.trainer")
    for step, loss in ((1, 0.9), (2, 0.5)):
        logger.emit(
            event_name="trackio.log", body={"train/loss": loss}, attributes={"trackio.step": step}
        )
    provider.shutdown()


def test_sdk_exporters_land_run_metrics_system_metrics_and_trace(endpoint, project):
    resource = sdk_resource(project, "sdk-run")
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    )
    ids = emit_agent_trace(tracer_provider)
    tracer_provider.shutdown()
    emit_metrics(OTLPMetricExporter(endpoint=endpoint, insecure=True), resource)
    emit_step_logs(OTLPLogExporter(endpoint=endpoint, insecure=True), resource)

    run = only_run(project)
    assert run["name"] == "sdk-run"
    config = SQLiteStorage.get_run_config(project, run["name"], run_id=run["id"])
    assert {k: config[k] for k in RUN_CONFIG} == RUN_CONFIG
    assert "_Group" in config and config["_Group"] is None

    logs = SQLiteStorage.get_logs(project, run["name"], run_id=run["id"])
    losses = {row["step"]: row["train/loss"] for row in logs if "train/loss" in row}
    assert losses == {1: 0.9, 2: 0.5}

    system = SQLiteStorage.get_system_logs(project, run["name"], run_id=run["id"])
    merged = {k: v for row in system for k, v in row.items() if "/" in k}
    assert merged == {"gpu/0/utilization": 75.0, "gpu/0/allocated_memory": 2.0, "memory/used": 3.0}

    (trace,) = traces_of(project, run)
    assert trace["key"] == "invoke_agent Helper"
    assert [m["role"] for m in trace["messages"]] == ["user", "assistant", "tool", "assistant"]
    assistant_call, tool_result = trace["messages"][1], trace["messages"][2]
    assert assistant_call["tool_calls"][0]["id"] == TOOL_CALL_ID
    assert tool_result["tool_call_id"] == TOOL_CALL_ID
    assert trace["messages"][3]["content"] == "x is 42"

    spans = {s["name"]: s for s in trace["spans"]}
    root_id = ids["invoke_agent Helper"]
    assert {n: (s["kind"], s["id"], s["parent_id"]) for n, s in spans.items()} == {
        "invoke_agent Helper": ("span", root_id, None),
        "chat first": ("generation", ids["chat first"], root_id),
        "execute_tool lookup": ("tool", TOOL_CALL_ID, root_id),  # the id Trackio pairs on
        "chat second": ("generation", ids["chat second"], root_id),
    }
    assert spans["chat first"]["model"] == "gpt-test-2025"
    assert spans["chat first"]["usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
    }
    assert spans["chat second"]["usage"]["total_tokens"] == 27
    assert trace["metadata"]["input_tokens"] == 30 and trace["metadata"]["output_tokens"] == 12


def test_dashboard_api_serves_the_collected_trace(endpoint, project):
    """Trackio's own dashboard, on loopback, returns the trace over its HTTP API."""
    traces, _ = load_fixture("new_span_only", project)
    with grpc.insecure_channel(endpoint) as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(traces)
    run = only_run(project)

    app, local_url, *_ = trackio.show(
        project=project,
        open_browser=False,
        block_thread=False,
        host="127.0.0.1",
        server_port=free_port(),
    )
    try:
        response = requests.post(
            local_url + "api/get_traces",
            json={"project": project, "run": run["name"], "run_id": run["id"]},
            timeout=30,
        )
    finally:
        app.close()
    response.raise_for_status()
    served = response.json()["data"]
    agent = next(t for t in served if t["key"] == "invoke_agent WeatherBot")
    assert [m["role"] for m in agent["messages"]] == AGENT_ROLES
    assert {s["kind"] for s in agent["spans"]} == {"span", "generation", "tool"}
    assert len(served) == len(traces_of(project, run))


# --- Split, out-of-order and repeated delivery ------------------------------------------------
def split_root(
    request: ExportTraceServiceRequest, trace_id: bytes
) -> tuple[ExportTraceServiceRequest, ExportTraceServiceRequest]:
    """(children of ``trace_id``, its root): the root arrives last, as when it ends last."""
    children, root = ExportTraceServiceRequest(), ExportTraceServiceRequest()
    for rs in request.resource_spans:
        for target in (children, root):
            out = target.resource_spans.add(resource=rs.resource, schema_url=rs.schema_url)
            for ss in rs.scope_spans:
                scope = out.scope_spans.add(scope=ss.scope, schema_url=ss.schema_url)
                for span in ss.spans:
                    if span.trace_id == trace_id and (target is root) == (not span.parent_span_id):
                        scope.spans.append(span)
    return children, root


def db(project: str, trackio_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(trackio_dir / f"{project}.db")


def test_root_arriving_after_its_children_completes_the_same_trace(endpoint, project, trackio_dir):
    traces, _ = load_fixture("new_span_only", project)
    spans = [s for rs in traces.resource_spans for ss in rs.scope_spans for s in ss.spans]
    root = next(s for s in spans if s.name == "invoke_agent WeatherBot")
    members = [s for s in spans if s.trace_id == root.trace_id]
    children, late_root = split_root(traces, root.trace_id)
    with grpc.insecure_channel(endpoint) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        stub.Export(children)
        (early,) = [t for t in traces_of(project) if t["id"] == root.trace_id.hex()]
        stub.Export(late_root)

    with closing(db(project, trackio_dir)) as conn:
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM traces WHERE id = ?", (root.trace_id.hex(),)
        ).fetchone()
    assert count == 1
    (trace,) = [t for t in traces_of(project) if t["id"] == root.trace_id.hex()]
    assert len(early["spans"]) == len(members) - 1
    assert trace["key"] == "invoke_agent WeatherBot"
    assert trace["step"] == early["step"]  # a late span updates its trace, keeps its place
    by_name = {s["name"]: s for s in trace["spans"]}
    assert len(trace["spans"]) == len(members)
    assert by_name["invoke_agent WeatherBot"]["parent_id"] is None
    root_id = root.span_id.hex()
    assert {s["parent_id"] for s in trace["spans"] if s["name"] != root.name} == {root_id}


RAW_TABLES = (
    "otel_spans",
    "otel_logs",
    "otel_metric_points",
    "otel_resources",
    "traces",
    "metrics",
    "system_metrics",
    "configs",
)


def gauge_request(project: str) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.add(key="trackio.project").value.string_value = project
    metric = rm.scope_metrics.add().metrics.add(name="hw.gpu.utilization", unit="1")
    for step_attr, value in ((None, 0.5), (3, 0.25)):
        dp = metric.gauge.data_points.add(time_unix_nano=1_700_000_000_000_000_000, as_double=value)
        dp.attributes.add(key="hw.id").value.string_value = "GPU-1"
        if step_attr is not None:
            dp.attributes.add(key="trackio.step").value.int_value = step_attr
    return request


def test_the_same_requests_sent_twice_store_every_row_once(endpoint, project, trackio_dir):
    traces, logs = load_fixture("legacy_content_true", project)
    metrics = gauge_request(project)

    def send_all() -> dict[str, int]:
        with grpc.insecure_channel(endpoint) as channel:
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(traces)
            logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs)
            metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(metrics)
        with closing(db(project, trackio_dir)) as conn:
            return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in RAW_TABLES}

    first = send_all()
    assert first["otel_spans"] == sum(
        len(ss.spans) for rs in traces.resource_spans for ss in rs.scope_spans
    )
    assert first["otel_logs"] == sum(
        len(sl.log_records) for rl in logs.resource_logs for sl in rl.scope_logs
    )
    assert first["otel_metric_points"] == 2
    assert first["system_metrics"] >= 1
    assert send_all() == first
    stepped = [
        row
        for run in runs(project)
        for row in SQLiteStorage.get_logs(project, run["name"], run_id=run["id"])
        if row["step"] == 3
    ]
    assert [row["gpu/1/utilization"] for row in stepped] == [25.0]  # hw.id "GPU-1" → gpu 1
    for run in runs(project):
        steps = [t["step"] for t in traces_of(project, run)]
        assert len(steps) == len(set(steps))


# --- Trackio itself writing to the same project -----------------------------------------------
NATIVE_STEPS = 300
NATIVE_SCRIPT = textwrap.dedent(
    """
    import sys, time, trackio
    trackio.init(project=sys.argv[1], name="native")
    for step in range(int(sys.argv[2])):
        trackio.log({"native/x": step}, step=step)
        time.sleep(0.002)  # spread Trackio's own flushes over the collector's writes
    trackio.finish()
    """
)


@pytest.fixture
def native_trackio(project: str, trackio_dir: Path) -> Iterator[subprocess.Popen]:
    env = {**os.environ, "TRACKIO_DIR": str(trackio_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-c", NATIVE_SCRIPT, project, str(NATIVE_STEPS)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_trackio_and_the_collector_write_one_project_at_once(
    endpoint, project, trackio_dir, native_trackio
):
    provider = TracerProvider(resource=sdk_resource(project, "otel-run"))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True), schedule_delay_millis=20
        )
    )
    tracer = provider.get_tracer("e2e.concurrent")
    trace_ids: set[str] = set()
    while native_trackio.poll() is None or len(trace_ids) < 50:
        with tracer.start_as_current_span("turn", attributes={"trackio.step": len(trace_ids)}) as s:
            trace_ids.add(format(s.get_span_context().trace_id, "032x"))
            with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat"}):
                pass
        if len(trace_ids) % 20 == 0:
            provider.force_flush()
            time.sleep(0.01)  # pace the load: many small commits, not one flood
        if len(trace_ids) > 5000:  # bound the load should Trackio hang
            break
    assert provider.force_flush()
    provider.shutdown()
    output = native_trackio.stdout.read().decode()
    assert native_trackio.wait() == 0, output

    by_name = {r["name"]: r for r in runs(project)}
    native = by_name["native"]
    logged = SQLiteStorage.get_logs(project, "native", run_id=native["id"])
    assert sorted(row["native/x"] for row in logged if "native/x" in row) == list(
        range(NATIVE_STEPS)
    )
    otel = by_name["otel-run"]
    stored = SQLiteStorage.get_traces(project, "otel-run", run_id=otel["id"])
    assert {t["id"] for t in stored} == trace_ids
    assert all(len(t["spans"]) == 2 for t in stored)
    with closing(db(project, trackio_dir)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (spans,) = conn.execute("SELECT COUNT(*) FROM otel_spans").fetchone()
    assert spans == 2 * len(trace_ids)
