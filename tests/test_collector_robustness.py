"""Bad input, backpressure and shutdown: each answered with the status the receiver documents
(trackio_otel/collector/receiver.py), nothing acknowledged is lost, other data stays intact.

Why: OTel exporters decide from the status alone whether to retry, drop or back off, so a
wrong code either loses data silently or retries garbage forever.
"""

from __future__ import annotations

import fcntl
import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from itertools import count
from pathlib import Path

import grpc
import pytest
import requests
from google.rpc.error_details_pb2 import RetryInfo
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from trackio.sqlite_storage import SQLiteStorage

from tests.conftest import free_port, local_config, only_run, traces_of
from trackio_otel.collector import Collector
from trackio_otel.collector.otlp import RETRY_DELAY_S
from trackio_otel.translate import metrics
from trackio_otel.translate.identity import run_for

EXPORT_TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_ids = count(1)


def new_span(name: str = "op", *, trace: bytes | None = None, parent: bytes = b"") -> PbSpan:
    """A span with fresh ids (unique across the session)."""
    n = next(_ids)
    return PbSpan(
        trace_id=trace if trace is not None else n.to_bytes(16, "big"),
        span_id=(n | 1 << 60).to_bytes(8, "big"),
        parent_span_id=parent,
        name=name,
        start_time_unix_nano=1_700_000_000_000_000_000 + n,
        end_time_unix_nano=1_700_000_000_000_000_000 + n + 1000,
    )


def trace_request(project: str, *spans: PbSpan) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="trackio.project").value.string_value = project
    rs.resource.attributes.add(key="trackio.run.name").value.string_value = "robust"
    rs.scope_spans.add().spans.extend(spans)
    return request


def send_raw(endpoint: str, payload: bytes) -> tuple[bytes, grpc.Call]:
    """Export arbitrary bytes: identity (de)serializers bypass the client's protobuf."""
    with grpc.insecure_channel(endpoint) as channel:
        export = channel.unary_unary(
            EXPORT_TRACES, request_serializer=None, response_deserializer=None
        )
        return export.with_call(payload, timeout=30)


def stored_span_ids(project: str, trackio_dir: Path) -> set[str]:
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as conn:
        return {row[0] for row in conn.execute("SELECT span_id FROM otel_spans")}


@pytest.fixture
def baseline(endpoint: str, project: str) -> PbSpan:
    """A span stored before the bad input arrives: it must survive it."""
    span = new_span("baseline")
    with grpc.insecure_channel(endpoint) as channel:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(trace_request(project, span))
    return span


def assert_still_serving(endpoint: str, project: str, trackio_dir: Path, *kept: PbSpan) -> None:
    """The server answers a good request after the bad one, and earlier data is untouched."""
    fresh = new_span("after")
    response, _ = send_raw(endpoint, trace_request(project, fresh).SerializeToString())
    assert ExportTraceServiceResponse.FromString(response) == ExportTraceServiceResponse()
    assert {s.span_id.hex() for s in (*kept, fresh)} <= stored_span_ids(project, trackio_dir)
    assert {t["key"] for t in traces_of(project)} >= {s.name for s in (*kept, fresh)}


# --- Undecodable payloads -------------------------------------------------------------------
def deep_request(project: str, depth: int) -> ExportTraceServiceRequest:
    """A span attribute that is a kvlist nested ``depth`` levels deep (3 messages a level).

    Built in place: copying a message deeper than upb's limit re-parses it and fails.
    """
    request = trace_request(project, new_span("deep"))
    value = request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="deep").value
    for level in range(depth):
        value = value.kvlist_value.values.add(key=f"l{level}").value
    value.string_value = "leaf"
    return request


def invalid_utf8(project: str) -> bytes:
    """A valid request whose span name is patched to bytes that are not UTF-8."""
    raw = trace_request(project, new_span("NAME-TO-CORRUPT")).SerializeToString()
    assert raw.count(b"NAME-TO-CORRUPT") == 1
    return raw.replace(b"NAME-TO-CORRUPT", b"NAME-\xff\xfe-CORRUPT")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(lambda p: b"GET / HTTP/1.1\r\n\r\n", "Wire format was corrupt", id="garbage"),
        pytest.param(invalid_utf8, "could not decode ExportTraceServiceRequest", id="invalid-utf8"),
        # upb's fixed limit of 100 nested messages: ~31 kvlist levels in a span attribute.
        pytest.param(lambda p: deep_request(p, 60).SerializeToString(), "MaxDepth", id="nested-60"),
        pytest.param(
            lambda p: deep_request(p, 200).SerializeToString(), "MaxDepth", id="nested-200"
        ),
    ],
)
def test_undecodable_payload_is_invalid_argument(
    endpoint, project, trackio_dir, baseline, payload: Callable[[str], bytes], reason: str
):
    with pytest.raises(grpc.RpcError) as info:
        send_raw(endpoint, payload(project))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in info.value.details()
    assert_still_serving(endpoint, project, trackio_dir, baseline)


def test_nesting_within_the_decoder_limit_is_stored_whole(endpoint, project, trackio_dir):
    request = deep_request(project, 30)
    response, _ = send_raw(endpoint, request.SerializeToString())
    assert ExportTraceServiceResponse.FromString(response) == ExportTraceServiceResponse()
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as conn:
        (raw,) = conn.execute("SELECT attributes FROM otel_spans").fetchone()
    value, depth = json.loads(raw)["deep"], 0
    while isinstance(value, dict):
        value, depth = value[f"l{depth}"], depth + 1
    assert (depth, value) == (30, "leaf")


# --- Size and backpressure -------------------------------------------------------------------
@pytest.fixture
def small_collector(trackio_dir: Path) -> Iterator[Collector]:
    """Bounds small enough for one test request to cross them."""
    config = local_config(trackio_dir, max_message_bytes=4096, max_queue_bytes=1)
    with Collector(config) as c:
        yield c


def test_oversized_message_is_resource_exhausted(small_collector, project, trackio_dir):
    endpoint = f"127.0.0.1:{small_collector.port}"
    big = new_span("big")
    big.attributes.add(key="blob").value.string_value = "x" * 8192
    with pytest.raises(grpc.RpcError) as info:
        send_raw(endpoint, trace_request(project, big).SerializeToString())
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(endpoint, project, trackio_dir)
    assert big.span_id.hex() not in stored_span_ids(project, trackio_dir)


@contextmanager
def trackio_lock(trackio_dir: Path, project: str) -> Iterator[None]:
    """Hold Trackio's own ``<project>.lock`` flock, as a busy Trackio writer would."""
    with open(trackio_dir / f"{project}.lock", "w") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def wait_until(condition: Callable[[], bool], what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.01)


def test_full_queue_is_resource_exhausted_with_retry_info(small_collector, project, trackio_dir):
    endpoint = f"127.0.0.1:{small_collector.port}"
    first, second = new_span("first"), new_span("second")
    outcome: dict[str, object] = {}

    def export_first() -> None:
        try:
            outcome["response"], _ = send_raw(
                endpoint, trace_request(project, first).SerializeToString()
            )
        except grpc.RpcError as exc:
            outcome["error"] = exc

    with trackio_lock(trackio_dir, project):
        sender = threading.Thread(target=export_first)
        sender.start()
        wait_until(lambda: small_collector.stats.queued_bytes > 0, "the first request to queue")
        with pytest.raises(grpc.RpcError) as info:
            send_raw(endpoint, trace_request(project, second).SerializeToString())
        assert sender.is_alive()  # still waiting for its commit: acked only once on disk
    sender.join(timeout=60)

    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(info.value.trailing_metadata())
    retry = RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    assert retry.retry_delay.seconds == RETRY_DELAY_S
    assert "error" not in outcome
    assert (
        ExportTraceServiceResponse.FromString(outcome["response"]) == ExportTraceServiceResponse()
    )
    send_raw(endpoint, trace_request(project, second).SerializeToString())  # the retry
    assert {first.span_id.hex(), second.span_id.hex()} <= stored_span_ids(project, trackio_dir)
    assert small_collector.stats.refused_requests == 1


# --- Bad items inside a good request ---------------------------------------------------------
def test_bad_ids_are_rejected_by_count_and_field_while_valid_spans_are_stored(
    endpoint, project, trackio_dir
):
    good_root = new_span("good root")
    good_child = new_span("good child", trace=good_root.trace_id, parent=good_root.span_id)
    short_id = new_span("short span id")
    short_id.span_id = short_id.span_id[:7]
    no_trace = new_span("no trace id", trace=b"")
    request = trace_request(project, good_root, short_id, good_child, no_trace)

    response, _ = send_raw(endpoint, request.SerializeToString())
    partial = ExportTraceServiceResponse.FromString(response).partial_success
    assert partial.rejected_spans == 2
    assert "spans[1]: span_id must be 8 bytes, got 7" in partial.error_message
    assert "spans[3]: trace_id is missing" in partial.error_message
    assert stored_span_ids(project, trackio_dir) == {
        good_root.span_id.hex(),
        good_child.span_id.hex(),
    }
    (trace,) = traces_of(project)
    assert {s["name"]: s["parent_id"] for s in trace["spans"]} == {
        "good root": None,
        "good child": good_root.span_id.hex(),
    }


# --- SIGTERM under load ----------------------------------------------------------------------
@pytest.fixture
def cli_collector(
    trackio_dir: Path, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen, dict[str, str], Path]]:
    """``trackio-otel collect`` as users run it, serving once its health check says so;
    yields it, its ``grpc`` and ``http`` addresses, and its log."""
    endpoints = {"grpc": f"127.0.0.1:{free_port()}", "http": f"127.0.0.1:{free_port()}"}
    log_path = tmp_path / "collector.log"
    command = [sys.executable, "-m", "trackio_otel.cli", "collect"]
    command += ["--trackio-dir", str(trackio_dir), "--grpc-endpoint", endpoints["grpc"]]
    command += ["--http-endpoint", endpoints["http"]]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            with grpc.insecure_channel(endpoints["grpc"]) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=60
                )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            yield proc, endpoints, log_path
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


class Refused(Exception):
    """An export the collector did not acknowledge; ``args[0]`` says how."""


def exporter(transport: str, address: str) -> Callable[[ExportTraceServiceRequest], str]:
    """Export over ``transport``; return the partial-success message ('' for none)."""
    if transport == "grpc":
        stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(address))

        def over_grpc(request: ExportTraceServiceRequest) -> str:
            try:
                return stub.Export(request, timeout=60).partial_success.error_message
            except grpc.RpcError as exc:
                raise Refused(exc.code()) from exc

        return over_grpc
    session = requests.Session()

    def over_http(request: ExportTraceServiceRequest) -> str:
        try:
            response = session.post(
                f"http://{address}/v1/traces",
                data=request.SerializeToString(),
                headers={"Content-Type": "application/x-protobuf"},
                timeout=60,
            )
        except requests.ConnectionError as exc:
            raise Refused("connection refused or closed") from exc
        if response.status_code != 200:
            raise Refused(response.status_code)
        return ExportTraceServiceResponse.FromString(response.content).partial_success.error_message

    return over_http


# Refusals the OTLP spec makes retryable: over gRPC UNAVAILABLE (connection refused, shutting
# down) or CANCELLED (gRPC cancels calls arriving once stop began); over HTTP 503 or a
# connection the collector no longer accepts.
RETRYABLE = {
    "grpc": {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED},
    "http": {503, "connection refused or closed"},
}


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sigterm_under_load_exits_cleanly_and_keeps_every_acknowledged_span(
    cli_collector, project, trackio_dir, transport
):
    proc, endpoints, log_path = cli_collector
    acked: list[PbSpan] = []
    failures: list[object] = []
    partial: list[str] = []
    stop = threading.Event()

    def client() -> None:
        export = exporter(transport, endpoints[transport])
        while not stop.is_set():
            root = new_span("load")
            child = new_span("load child", trace=root.trace_id, parent=root.span_id)
            try:
                message = export(trace_request(project, root, child))
            except Refused as exc:
                failures.append(exc.args[0])
                return  # a real exporter backs off; the collector is going away
            if message:
                partial.append(message)
            acked.extend((root, child))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 400, "some load to be acknowledged")
    proc.send_signal(signal.SIGTERM)
    returncode = proc.wait(timeout=60)
    stop.set()
    for t in threads:
        t.join(timeout=60)

    assert returncode == 0, log_path.read_text()
    assert partial == []
    assert set(failures) <= RETRYABLE[transport]
    assert {s.span_id.hex() for s in acked} <= stored_span_ids(project, trackio_dir)
    run = only_run(project)
    shown = {
        s["id"]
        for t in SQLiteStorage.get_traces(project, run["name"], run_id=run["id"])
        for s in t["spans"]
    }
    assert {s.span_id.hex() for s in acked} <= shown


def test_stats_line_is_written_only_when_a_count_changed(trackio_dir, project, caplog):
    """An idle collector (a sidecar, most of the day) keeps its log quiet."""
    config = local_config(trackio_dir, http_endpoint=None, stats_interval_s=0.02)
    caplog.set_level("INFO", logger="trackio_otel.collector")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("stats:")]

    with Collector(config) as c:
        wait_until(lambda: len(lines()) == 1, "the first stats line")
        time.sleep(0.3)  # some 15 intervals with nothing new
        assert len(lines()) == 1
        send_raw(f"127.0.0.1:{c.port}", trace_request(project, new_span()).SerializeToString())
        wait_until(lambda: "committed=1 " in lines()[-1], "a stats line with the span")


# --- Units: identity defaults and metric keys ------------------------------------------------
def test_identity_defaults_keep_one_process_in_one_run():
    a = run_for({"service.name": "svc", "service.instance.id": "proc-a"})
    again = run_for({"service.name": "svc", "service.instance.id": "proc-a", "other": 1})
    b = run_for({"service.name": "svc", "service.instance.id": "proc-b"})
    assert a.project == "svc" and a.run_name.startswith("svc-") and len(a.run_name) == 12
    assert (again.run_name, again.run_id) == (a.run_name, a.run_id)  # retries, restarts
    assert b.run_name != a.run_name and b.run_id != a.run_id
    bare = run_for({})
    assert bare.project == "default" and bare.run_name.startswith("otel-")


def test_identity_explicit_attributes_win_and_are_canonicalised():
    attrs = {
        "service.name": "svc",
        "trackio.project": "my project!",
        "trackio.run.name": "exp-1",
        "trackio.run.group": "sweep",
        "trackio.run.config": '{"lr": 0.1}',
        "trackio.run.config.seed": 7,
    }
    run = run_for(attrs)
    assert (run.project, run.run_name, run.group) == ("myproject", "exp-1", "sweep")
    assert run.config == {"lr": 0.1, "seed": 7}
    other_process = run_for({**attrs, "service.instance.id": "elsewhere"})
    assert other_process.run_id == run.run_id  # a named run spans processes
    assert run_for({**attrs, "trackio.run.id": "fixed"}).run_id == "fixed"


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"trackio.project": "logs_system"}, "resource.attributes[trackio.project]"),
        ({"service.name": "registry-x"}, "resource.attributes[service.name]"),
        ({"trackio.run.config": "{not json"}, "trackio.run.config]: not JSON"),
        ({"trackio.run.config": "[1]"}, "must be a JSON object"),
    ],
)
def test_identity_errors_name_the_attribute(attrs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run_for(attrs)


@pytest.mark.parametrize(
    ("name", "attrs", "value", "expected"),
    [
        ("hw.gpu.utilization", {"hw.id": "nvidia-gpu-3"}, 0.5, {"gpu/3/utilization": 50.0}),
        (
            "hw.gpu.utilization",
            {"trackio.gpu.index": 1, "hw.gpu.task": "encoder"},
            0.25,
            {"gpu/1/enc_utilization": 25.0},
        ),
        ("hw.gpu.memory.usage", {"gpu.index": 0}, float(1 << 31), {"gpu/0/allocated_memory": 2.0}),
        ("gpu.memory.used", {"gpu.index": 2}, 512.0, {"gpu/2/allocated_memory": 0.5}),
        (
            "system.memory.usage",
            {"system.memory.state": "free"},
            float(1 << 30),
            {"memory/free": 1.0},
        ),
        (
            "gen_ai.client.token.usage",
            {"gen_ai.token.type": "input"},
            3.0,
            {"gen_ai/client/token/usage/input": 3.0},
        ),
        ("my.custom", {}, 1.5, {"my.custom": 1.5}),
    ],
)
def test_metric_points_take_trackio_keys_and_units(name, attrs, value, expected):
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name=name)
    dp = metric.gauge.data_points.add(time_unix_nano=1, as_double=value)
    for key, v in attrs.items():
        field = "int_value" if isinstance(v, int) else "string_value"
        setattr(dp.attributes.add(key=key).value, field, v)
    (row,) = metrics.from_request(request).scalars
    assert (row.values, row.step) == (expected, None)


def test_cpu_utilization_sums_busy_modes_per_cpu_and_a_step_makes_a_metrics_row():
    request = ExportMetricsServiceRequest()
    scope = request.resource_metrics.add().scope_metrics.add()
    cpu = scope.metrics.add(name="system.cpu.utilization")
    for number, mode, value in (
        (0, "user", 0.2),
        (0, "system", 0.1),
        (0, "idle", 0.7),
        (1, "user", 0.5),
    ):
        dp = cpu.gauge.data_points.add(time_unix_nano=5, as_double=value)
        dp.attributes.add(key="cpu.logical_number").value.int_value = number
        dp.attributes.add(key="cpu.mode").value.string_value = mode
    stepped = scope.metrics.add(name="train/loss").gauge.data_points.add(
        time_unix_nano=5, as_double=0.3
    )
    stepped.attributes.add(key="trackio.step").value.int_value = 12
    rows = {row.step: row.values for row in metrics.from_request(request).scalars}
    assert rows[12] == {"train/loss": 0.3}
    assert rows[None] == pytest.approx(
        {"cpu/0/utilization": 30.0, "cpu/1/utilization": 50.0, "cpu/utilization": 40.0}
    )
