"""OTLP/HTTP: the real OTel Python HTTP exporters, raw OTLP/JSON and protobuf POSTs, and every
status code the receiver documents (trackio_otel/collector/http.py), read back through
Trackio's reader."""

from __future__ import annotations

import base64
import gzip
import json
import sqlite3
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path

import pytest
import requests
from google.protobuf.json_format import MessageToDict
from google.rpc import code_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetrics,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetrics,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from trackio.sqlite_storage import SQLiteStorage

from tests.conftest import AGENT_ROLES, load_fixture, local_config, only_run, traces_of
from tests.test_collector_e2e import emit_agent_trace, emit_metrics, emit_step_logs, sdk_resource
from tests.test_collector_robustness import (
    new_span,
    trace_request,
    trackio_lock,
    wait_until,
)
from trackio_otel.collector import Collector

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def url(collector: Collector, signal: str = "traces") -> str:
    return f"http://127.0.0.1:{collector.http_port}/v1/{signal}"


def post(collector: Collector, body: bytes, headers: dict, signal: str = "traces"):
    return requests.post(url(collector, signal), data=body, headers=headers, timeout=30)


def status_of(response: requests.Response) -> status_pb2.Status:
    """The ``google.rpc.Status`` body, in the content type the response declares."""
    if response.headers["content-type"] == "application/json":
        body = response.json()
        return status_pb2.Status(code=body.get("code", 0), message=body.get("message", ""))
    return status_pb2.Status.FromString(response.content)


def hex_ids(tree: object) -> object:
    """Protobuf's JSON (base64 ids) → OTLP/JSON (hex ids), as OTel's JSON exporters send."""
    if isinstance(tree, list):
        return [hex_ids(v) for v in tree]
    if isinstance(tree, dict):
        return {
            k: base64.b64decode(v).hex()
            if k.endswith(("traceId", "spanId", "SpanId"))
            else hex_ids(v)
            for k, v in tree.items()
        }
    return tree


def readback(project: str) -> dict:
    """What Trackio's reader shows of a run, minus what differs between two sends (trace and
    span ids are random per process; timestamps)."""
    run = only_run(project)
    logs = SQLiteStorage.get_logs(project, run["name"], run_id=run["id"])
    system = SQLiteStorage.get_system_logs(project, run["name"], run_id=run["id"])
    config = SQLiteStorage.get_run_config(project, run["name"], run_id=run["id"])
    traces = [
        {
            "key": t["key"],
            "messages": [(m["role"], m.get("content")) for m in t["messages"]],
            "spans": sorted(
                (s["name"], s["kind"], s.get("usage") and str(s["usage"])) for s in t["spans"]
            ),
            "tokens": (t["metadata"]["input_tokens"], t["metadata"]["output_tokens"]),
        }
        for t in traces_of(project, run)
    ]
    return {
        "run": run["name"],
        "config": {k: v for k, v in config.items() if not k.startswith("_")},
        "losses": {row["step"]: row["train/loss"] for row in logs if "train/loss" in row},
        "system": {k: v for row in system for k, v in row.items() if "/" in k},
        "traces": traces,
    }


def send_with(spans, metrics, logs, resource: Resource) -> None:
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    emit_agent_trace(provider)
    provider.shutdown()
    emit_metrics(metrics, resource)
    emit_step_logs(logs, resource)


def test_python_http_exporters_store_what_grpc_stores(collector, endpoint):
    over_grpc, over_http = "t-grpc-" + endpoint.rsplit(":")[-1], f"t-http-{collector.http_port}"
    send_with(
        GrpcSpans(endpoint=endpoint, insecure=True),
        GrpcMetrics(endpoint=endpoint, insecure=True),
        GrpcLogs(endpoint=endpoint, insecure=True),
        sdk_resource(over_grpc, "sdk-run"),
    )
    send_with(
        HttpSpans(endpoint=url(collector, "traces")),
        HttpMetrics(endpoint=url(collector, "metrics")),
        HttpLogs(endpoint=url(collector, "logs")),
        sdk_resource(over_http, "sdk-run"),
    )
    grpc_view, http_view = readback(over_grpc), readback(over_http)
    assert http_view == grpc_view
    assert http_view["losses"] == {1: 0.9, 2: 0.5}  # the comparison is not of two empties
    assert http_view["system"]["gpu/0/utilization"] == 75.0
    assert [m[0] for m in http_view["traces"][0]["messages"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.Deflate])
def test_compressed_exports_are_stored(collector, project, compression):
    exporter = HttpSpans(endpoint=url(collector), compression=compression)
    provider = TracerProvider(resource=Resource.create({"trackio.project": project}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("squeezed", attributes={"k": "v" * 5000}):
        pass
    provider.shutdown()
    [trace] = traces_of(project)
    assert trace["key"] == "squeezed"


def test_otlp_json_post_with_hex_ids_is_stored_like_grpc(collector, project):
    traces, _ = load_fixture("new_span_only", project)
    body = json.dumps(hex_ids(MessageToDict(traces))).encode()
    response = post(collector, body, JSON)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    agent = next(t for t in traces_of(project) if t["key"] == "invoke_agent WeatherBot")
    assert [m["role"] for m in agent["messages"]] == AGENT_ROLES
    root = next(
        s
        for rs in traces.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
        if s.name == "invoke_agent WeatherBot"
    )
    assert agent["metadata"]["trace_id"] == root.trace_id.hex()  # hex on the wire, the same id


def test_otlp_json_snake_case_names_integer_enums_and_unknown_fields(collector, project):
    span = new_span("snake")
    body = {
        "resource_spans": [
            {
                "resource": {
                    "attributes": [{"key": "trackio.project", "value": {"string_value": project}}]
                },
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": span.trace_id.hex().upper(),
                                "span_id": span.span_id.hex(),
                                "name": "snake",
                                "kind": 3,
                                "start_time_unix_nano": str(span.start_time_unix_nano),
                                "endTimeUnixNano": span.end_time_unix_nano,
                                "aFieldFromTheFuture": {"x": 1},
                            }
                        ]
                    }
                ],
            }
        ]
    }
    response = post(collector, json.dumps(body).encode(), JSON)
    assert response.status_code == 200, response.text
    [trace] = traces_of(project)
    assert trace["metadata"]["trace_id"] == span.trace_id.hex()


def test_partial_success_is_in_the_body(collector, project):
    bad = new_span("bad-id")
    bad.span_id = b"\x01\x02"
    response = post(
        collector, trace_request(project, new_span("ok"), bad).SerializeToString(), PROTOBUF
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1
    assert "span_id" in partial.error_message


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        pytest.param(b"\xff\xff\xff", PROTOBUF, 400, "could not decode", id="corrupt-protobuf"),
        pytest.param(b"{not json", JSON, 400, "not JSON", id="corrupt-json"),
        pytest.param(
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}',
            JSON,
            400,
            "traceId",
            id="json-bad-hex-id",
        ),
        pytest.param(b'{"resourceSpans": 7}', JSON, 400, "resourceSpans", id="json-wrong-type"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, JSON, 400, "", id="json-deep"),
        pytest.param(b"x", {"Content-Type": "text/plain"}, 415, "content type", id="text-plain"),
        pytest.param(
            b"x", {**PROTOBUF, "Content-Encoding": "br"}, 415, "content encoding", id="brotli"
        ),
        pytest.param(
            b"not gzip", {**PROTOBUF, "Content-Encoding": "gzip"}, 400, "gzip", id="bad-gzip"
        ),
    ],
)
def test_refused_requests_name_the_problem_and_keep_serving(
    collector, project, body, headers, status, says
):
    response = post(collector, body, headers)
    assert response.status_code == status
    refused = status_of(response)
    assert says in refused.message
    assert refused.code in (code_pb2.INVALID_ARGUMENT,)
    ok = post(collector, trace_request(project, new_span("after")).SerializeToString(), PROTOBUF)
    assert ok.status_code == 200


def test_other_methods_and_paths(collector):
    assert requests.get(url(collector), timeout=10).status_code == 405
    assert requests.put(url(collector), data=b"", timeout=10).status_code == 405
    assert post(collector, b"", PROTOBUF, signal="profiles").status_code == 404
    # no CORS unless asked: a browser's preflight is refused
    assert requests.options(url(collector), timeout=10).status_code == 405


def test_an_empty_request_is_a_success(collector):
    assert post(collector, b"", PROTOBUF).status_code == 200
    assert post(collector, b"{}", JSON).status_code == 200


@pytest.fixture
def small_collector(trackio_dir: Path) -> Iterator[Collector]:
    config = local_config(
        trackio_dir,
        max_message_bytes=4096,
        max_queue_bytes=1,
        write_timeout_s=0.5,
        http_cors_origins=("https://app.example",),
    )
    with Collector(config) as c:
        yield c


def test_oversized_and_decompression_bombs_are_413(small_collector, project, trackio_dir):
    big = new_span("big")
    big.attributes.add(key="blob").value.string_value = "x" * 8192
    raw = trace_request(project, big).SerializeToString()
    assert post(small_collector, raw, PROTOBUF).status_code == 413
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 KiB on the wire, 64 MiB inflated
    assert len(bomb) < 4096 * 20
    response = post(small_collector, bomb[:4000], {**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompressed body exceeds 4096 bytes" in status_of(response).message
    deflated = zlib.compress(raw)
    assert len(deflated) < 4096
    assert (
        post(small_collector, deflated, {**PROTOBUF, "Content-Encoding": "deflate"}).status_code
        == 413
    )
    assert not (trackio_dir / f"{project}.db").exists()  # nothing was stored


def test_cors_only_for_the_configured_origin(small_collector):
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    allowed = requests.options(url(small_collector), headers=preflight, timeout=10)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    other = requests.options(
        url(small_collector), headers={**preflight, "Origin": "https://evil.example"}, timeout=10
    )
    assert "access-control-allow-origin" not in other.headers


def finished_spans(project: str, name: str) -> Sequence[ReadableSpan]:
    """One ended span of ``project``, ready for an exporter's ``export``."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"trackio.project": project}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span(name):
        pass
    provider.shutdown()
    return memory.get_finished_spans()


def export_one(collector: Collector, project: str, name: str) -> SpanExportResult:
    """One span through the stock HTTP exporter (its own retries), as an app would."""
    exporter = HttpSpans(endpoint=url(collector), timeout=20)
    try:
        return exporter.export(finished_spans(project, name))
    finally:
        exporter.shutdown()


def span_rows(project: str, trackio_dir: Path, name: str) -> int:
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as conn:
        return conn.execute("SELECT COUNT(*) FROM otel_spans WHERE name = ?", (name,)).fetchone()[0]


def test_full_queue_is_429_and_the_stock_exporter_retries_after_retry_after(
    small_collector, project, trackio_dir, caplog
):
    """The queue holds one request (max_queue_bytes=1) which waits on the project's lock;
    the exporter is told 429 + Retry-After, waits, and its retry lands once the lock is
    free."""
    post(small_collector, trace_request(project, new_span("first")).SerializeToString(), PROTOBUF)
    with trackio_lock(trackio_dir, project):
        holder = threading.Thread(
            target=post,
            args=(
                small_collector,
                trace_request(project, new_span("held")).SerializeToString(),
                PROTOBUF,
            ),
        )
        holder.start()
        wait_until(lambda: small_collector.stats.queued_bytes > 0, "the held request to queue")
        refused = post(
            small_collector, trace_request(project, new_span("x")).SerializeToString(), PROTOBUF
        )
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        results: list[SpanExportResult] = []
        exporter = threading.Thread(
            target=lambda: results.append(export_one(small_collector, project, "patient"))
        )
        exporter.start()
        wait_until(lambda: small_collector.stats.refused_requests >= 2, "the exporter's 429")
    exporter.join(timeout=30)
    holder.join(timeout=30)
    assert results == [SpanExportResult.SUCCESS]
    assert "Too Many Requests" in caplog.text  # the exporter's own "retrying in 1.00s"
    assert "retrying in 1.00s" in caplog.text
    assert span_rows(project, trackio_dir, "patient") == 1


def test_a_stuck_writer_is_503_and_the_retry_does_not_duplicate(
    small_collector, project, trackio_dir, caplog
):
    """write_timeout_s=0.5: a writer that cannot commit (the project's lock is held) costs its
    caller a 503 with Retry-After, not a hung request; the first attempt still commits once
    the lock is free, and the exporter's retry lands on the same row."""
    post(small_collector, trace_request(project, new_span("first")).SerializeToString(), PROTOBUF)
    results: list[SpanExportResult] = []
    with trackio_lock(trackio_dir, project):
        exporter = threading.Thread(
            target=lambda: results.append(export_one(small_collector, project, "slow"))
        )
        exporter.start()
        wait_until(lambda: small_collector.stats.queued_requests == 1, "the export to queue")
        raw = trace_request(project, new_span("x")).SerializeToString()
        wait_until(lambda: post(small_collector, raw, PROTOBUF).status_code == 429, "a full queue")
        threading.Event().wait(0.7)  # past write_timeout_s: the exporter has had its 503
    exporter.join(timeout=30)
    assert results == [SpanExportResult.SUCCESS]
    assert "Service Unavailable" in caplog.text
    assert span_rows(project, trackio_dir, "slow") == 1
