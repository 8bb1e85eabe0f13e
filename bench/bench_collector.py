"""Collector benchmark: realistic LLM agent spans over OTLP/gRPC into Trackio's SQLite.

Runs ``trackio-otel collect`` in its own process and drives it from this one:

A  throughput: closed-loop clients send as fast as the collector answers; committed
   spans/s = spans answered OK / elapsed, then checked against the database.
B  latency: a fixed offered rate below saturation; p50/p99 of Export calls.
C  overload: many clients far above capacity with a small queue; the collector's peak
   RSS and the RESOURCE_EXHAUSTED answers (with RetryInfo) they get.
Baseline: single-threaded decode → translate → plain sqlite3 executemany, in process,
   measured before and again after A (these machines drift by tens of percent within
   minutes: A is compared with the mean of the two, and both are printed).

Requests are built from one serialized template whose ids carry marker bytes; each
request swaps the markers for its own sequence number (one ``bytes.replace``), so every
span id and trace id is unique and the client side costs almost nothing. A trace id
starts with 8 bytes that differ from trace to trace, as random OTel ids do, so each
request's inserts land all over every index keyed by trace id (ids that grew with the
sequence number kept them on a few pages and measured ~10% faster).

    python bench/bench_collector.py            # all phases, about 40 s
    python bench/bench_collector.py --phases a --seconds 5
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import floor  # bench/floor.py: this script runs with bench/ first on sys.path
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

PROJECT = "bench"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SPANS_PER_TRACE = 4
# Marker bytes never produced by the ASCII payload; each request overwrites them.
TRACE_MARK = b"\xfe\xed\xfa\xce\xca\xfe\xba\xbe"  # last 8 of 16 trace-id bytes
SPAN_MARK = b"\xde\xad\xbe\xef"  # first 4 of 8 span-id bytes
LONG_SPANS, LONG_PER_REQUEST = 2000, 8


# --- Requests ---------------------------------------------------------------------------------
def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, list):
        arr = AnyValue()
        arr.array_value.values.extend(AnyValue(string_value=str(v)) for v in value)
        return KeyValue(key=key, value=arr)
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


_WORDS = ("the", "weather", "in", "paris", "is", "rainy", "with", "light", "wind", "and", "a")


def _text(seed: int, n: int) -> str:
    """About ``n`` characters of prose, varied by ``seed``."""
    out = " ".join(_WORDS[(seed + i) % len(_WORDS)] for i in range(n // 5))
    return out[:n]


def _messages(trace: int, turn: int) -> tuple[str, str]:
    """(gen_ai.input.messages, gen_ai.output.messages): ~1.5 KB of text together."""
    history = [
        {"role": "user", "parts": [{"type": "text", "content": _text(trace, 800)}]},
    ]
    call = {
        "type": "tool_call",
        "id": f"call_{trace}",
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
    if turn:
        history += [
            {"role": "assistant", "parts": [call]},
            {
                "role": "tool",
                "parts": [
                    {
                        "type": "tool_call_response",
                        "id": f"call_{trace}",
                        "response": _text(trace + 1, 300),
                    }
                ],
            },
        ]
        output = [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": _text(trace + 2, 650)}],
                "finish_reason": "stop",
            }
        ]
    else:
        history[0]["parts"][0]["content"] = _text(trace, 1500)
        output = [
            {
                "role": "assistant",
                "parts": [call],
                "finish_reason": "tool_calls",
            }
        ]
    return json.dumps(history), json.dumps(output)


def _span(trace: int, index: int, parent: int | None, t0: int) -> Span:
    scattered = hashlib.blake2b(struct.pack(">Q", trace), digest_size=8).digest()
    trace_id = scattered + TRACE_MARK
    span_id = SPAN_MARK + struct.pack(">I", trace * SPANS_PER_TRACE + index + 1)
    common = {
        "gen_ai.provider.name": "openai",
        "gen_ai.conversation.id": f"conv-{trace:08d}",
        "gen_ai.agent.name": "WeatherBot",
        "server.address": "api.openai.com",
        "server.port": 443,
    }
    if index == 0:
        name, kind = "invoke_agent WeatherBot", Span.SPAN_KIND_INTERNAL
        attrs = {
            **common,
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.id": "agent-weather-1",
            "gen_ai.agent.description": "Answers weather questions with a tool",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 812,
            "gen_ai.usage.output_tokens": 96,
            "gen_ai.input.messages": _messages(trace, 0)[0],
            "gen_ai.output.messages": _messages(trace, 1)[1],
            "user.id": f"user-{trace % 97}",
            "session.id": f"session-{trace % 31}",
            "trackio.trace.key": "weather",
        }
    elif index in (1, 2):
        name, kind = "chat gpt-4o-mini", Span.SPAN_KIND_CLIENT
        messages_in, messages_out = _messages(trace, index - 1)
        attrs = {
            **common,
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.response.id": f"chatcmpl-{trace:012d}{index}",
            "gen_ai.response.finish_reasons": ["tool_calls" if index == 1 else "stop"],
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 512,
            "gen_ai.request.top_p": 1.0,
            "gen_ai.request.seed": 42,
            "gen_ai.output.type": "text",
            "gen_ai.usage.input_tokens": 400 + index,
            "gen_ai.usage.output_tokens": 48,
            "openai.response.service_tier": "default",
            "gen_ai.input.messages": messages_in,
            "gen_ai.output.messages": messages_out,
        }
    else:
        name, kind = "execute_tool get_weather", Span.SPAN_KIND_INTERNAL
        attrs = {
            **common,
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "get_weather",
            "gen_ai.tool.type": "function",
            "gen_ai.tool.description": "Current weather for a city",
            "gen_ai.tool.call.id": f"call_{trace}",
            "gen_ai.tool.call.arguments": json.dumps({"city": "Paris", "unit": "celsius"}),
            "gen_ai.tool.call.result": json.dumps({"forecast": _text(trace + 1, 2000)}),
            "code.function": "get_weather",
            "code.namespace": "bench.tools",
            "thread.id": 140211,
            "thread.name": "MainThread",
        }
    start = t0 + index * 1_000_000
    span = Span(
        trace_id=trace_id,
        span_id=span_id,
        name=name,
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=start + (400_000_000 if index else 1_500_000_000),
        attributes=[_kv(k, v) for k, v in attrs.items()],
    )
    if parent is not None:
        span.parent_span_id = SPAN_MARK + struct.pack(">I", trace * SPANS_PER_TRACE + parent + 1)
    span.status.code = 1
    return span


def _request(spans: list[Span]) -> ExportTraceServiceRequest:
    """A request of these spans from the bench's agent process."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    for k, v in {
        "service.name": "weather-agent",
        "service.instance.id": "bench-instance-1",
        "trackio.project": PROJECT,
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": "1.45.2",
        "host.name": "bench-host",
        "process.pid": 4242,
    }.items():
        rs.resource.attributes.append(_kv(k, v))
    scope_spans = rs.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.openai_v2"
    scope_spans.scope.version = "2.3b0"
    scope_spans.spans.extend(spans)
    return request


def template(spans_per_request: int) -> bytes:
    """One serialized request of ``spans_per_request`` spans (whole traces of four)."""
    t0 = time.time_ns()
    spans = [
        # Children end first, so they are exported before their parent.
        _span(trace, index, parent, t0 + trace * 10**9)
        for trace in range(spans_per_request // SPANS_PER_TRACE)
        for index, parent in ((3, 0), (1, 0), (2, 0), (0, None))
    ]
    raw = _request(spans).SerializeToString()
    assert raw.count(TRACE_MARK) == spans_per_request, "trace marker collides with payload"
    return raw


def long_trace(number: int, spans: int, per_request: int) -> list[bytes]:
    """One agent session of ``spans`` spans (a root, then chat and tool calls under it),
    exported ``per_request`` at a time with the root last, as the batch processor sends a
    session that runs for minutes. ``number`` makes its ids its own."""
    t0 = time.time_ns()
    trace = 1_000_000 + number  # the template's traces are 0, 1, ...
    root = _span(trace, 0, None, t0)
    order = []
    for i in range(1, spans):
        span = _span(trace, 1 + i % 3, 0, t0 + i * 1_000_000)
        span.span_id = struct.pack(">Q", 1 << 62 | number << 32 | i)
        span.parent_span_id = root.span_id
        order.append(span)
    order.append(root)
    return [
        _request(order[i : i + per_request]).SerializeToString()
        for i in range(0, spans, per_request)
    ]


class Requests:
    """Unique requests from the template: request ``n`` replaces the id markers with ``n``."""

    def __init__(self, spans_per_request: int) -> None:
        self.raw = template(spans_per_request)
        self.spans = spans_per_request
        self._next = itertools.count(1)

    def next(self) -> bytes:
        n = next(self._next)  # itertools.count is atomic under the GIL
        return self.raw.replace(TRACE_MARK, struct.pack(">Q", 1 << 63 | n)).replace(
            SPAN_MARK, struct.pack(">I", 1 << 31 | n)
        )


# --- The collector process ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CollectorProcess:
    def __init__(
        self,
        trackio_dir: Path,
        max_queue_mib: int,
        writers: int | None,
        extra_args: Sequence[str] = (),
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        """``extra_args`` go to ``collect`` (TLS, a token); ``credentials`` reach it then."""
        self.port, self.http_port = free_port(), free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.log = open(trackio_dir.parent / f"collector-{self.port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trackio_otel.cli",
                "collect",
                "--trackio-dir",
                str(trackio_dir),
                "--grpc-endpoint",
                self.target,
                "--http-endpoint",
                f"127.0.0.1:{self.http_port}",
                "--max-queue-mib",
                str(max_queue_mib),
                "--stats-interval",
                "1",
                *(["--writers", str(writers)] if writers is not None else []),
                *extra_args,
            ],
            stderr=self.log,
        )
        channel = (
            grpc.secure_channel(self.target, credentials)
            if credentials
            else grpc.insecure_channel(self.target)
        )
        with channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert status.status == health_pb2.HealthCheckResponse.SERVING

    def rss_mib(self) -> float:
        """The collector's RSS with its writer processes'."""
        pids = [self.proc.pid]
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
        total = 0
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total / 1024

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=120)
        self.log.close()


# --- Clients -----------------------------------------------------------------------------------
@dataclass
class Tally:
    ok_spans: int = 0
    ok_requests: int = 0
    refused: int = 0
    retry_info: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, spans: int, started: float, error: grpc.RpcError | None) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        with self.lock:
            if error is None:
                self.ok_spans += spans
                self.ok_requests += 1
                self.latencies_ms.append(elapsed_ms)
            elif error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                self.refused += 1
                trailers = dict(error.trailing_metadata() or ())
                self.retry_info += "google.rpc.retryinfo-bin" in trailers
            else:
                name = error.code().name
                self.errors[name] = self.errors.get(name, 0) + 1


def run_clients(
    target: str,
    requests: Requests,
    clients: int,
    seconds: float,
    rate_spans: float | None = None,
    refused_pause_s: float = 0.05,
) -> tuple[Tally, float]:
    """Clients send until ``seconds`` pass: closed loop, or paced to ``rate_spans`` in total.

    A refused request is dropped after ``refused_pause_s`` (the bench measures the refusal,
    it does not need the data), so the offered load stays high.
    """
    tally = Tally()
    deadline = time.perf_counter() + seconds
    interval = clients * requests.spans / rate_spans if rate_spans else 0.0

    def client(i: int) -> None:
        with grpc.insecure_channel(target) as channel:
            export = channel.unary_unary(
                EXPORT, response_deserializer=ExportTraceServiceResponse.FromString
            )
            due = time.perf_counter() + interval * i / clients
            while True:
                if interval:
                    time.sleep(max(0.0, due - time.perf_counter()))
                    due += interval
                if time.perf_counter() >= deadline:
                    return
                raw = requests.next()
                started = time.perf_counter()
                try:
                    export(raw, timeout=60)
                except grpc.RpcError as exc:
                    tally.record(requests.spans, started, exc)
                    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        time.sleep(refused_pause_s)
                else:
                    tally.record(requests.spans, started, None)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def count_rows(trackio_dir: Path) -> tuple[int, int]:
    with sqlite3.connect(trackio_dir / f"{PROJECT}.db") as db:
        spans = db.execute("SELECT COUNT(*) FROM otel_spans").fetchone()[0]
        traces = db.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
    return spans, traces


def wal_bytes(trackio_dir: Path) -> int:
    wal = trackio_dir / f"{PROJECT}.db-wal"
    return wal.stat().st_size if wal.exists() else 0


def disk_report(trackio_dir: Path, spans: int, loaded: int) -> str:
    """Bytes per span in the project database, by table, and the WAL given back once idle
    (``loaded``: its size when the load ended)."""
    db_path = trackio_dir / f"{PROJECT}.db"
    wal = Path(f"{db_path}-wal")
    deadline = time.monotonic() + 10
    while wal.exists() and wal.stat().st_size and time.monotonic() < deadline:
        time.sleep(0.2)
    idle = wal.stat().st_size if wal.exists() else 0
    with sqlite3.connect(db_path) as db:
        try:
            sizes = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
        except sqlite3.OperationalError:  # SQLite built without dbstat
            sizes = {}
    with sqlite3.connect(db_path) as db:
        columns = db.execute("SELECT AVG(LENGTH(attributes)), AVG(LENGTH(view)) FROM otel_spans")
        attributes, view = columns.fetchone()
    parts = ", ".join(
        f"{name} {sizes.get(name, 0) / spans:,.0f}"
        for name in ("otel_spans", "traces", "idx_traces_search")
    )
    parts += f"; otel_spans.attributes {attributes:,.0f}, .view {view:,.0f}"
    return (
        f"disk: {db_path.stat().st_size / spans:,.0f} B/span (goal <= 8,192; {parts}); "
        f"WAL {loaded / 2**20:.0f} MiB at the end of the load, {idle / 2**20:.1f} MiB once idle"
    )


def trackio_reader_check(trackio_dir: Path, expect_traces: int) -> str:
    """Trackio's own reader sees the traces (a page of them, fully parsed, plus the count)."""
    os.environ["TRACKIO_DIR"] = str(trackio_dir)  # read by trackio at import
    from trackio.sqlite_storage import SQLiteStorage

    (run,) = SQLiteStorage.get_run_records(PROJECT)
    page = SQLiteStorage.get_traces(PROJECT, run_id=run["id"], limit=50)
    assert page and all(len(t["spans"]) == SPANS_PER_TRACE for t in page), page[:1]
    assert all([m["role"] for m in t["messages"]][-1] == "assistant" for t in page)
    return f"get_traces page of {len(page)} parsed, {expect_traces} traces in total"


# --- Baseline ----------------------------------------------------------------------------------
def baseline(requests: Requests, seconds: float, db_path: Path) -> tuple[float, float]:
    """The floor (bench/floor.py) on this run's requests: (spans/s, p99 ms per request)."""
    db = floor.open_db(db_path)
    done, started, latencies = 0, time.perf_counter(), []
    while time.perf_counter() - started < seconds:
        began = time.perf_counter()
        done += floor.write(db, requests.next())
        latencies.append((time.perf_counter() - began) * 1000)
    elapsed = time.perf_counter() - started
    db.close()
    return done / elapsed, percentile(latencies, 99)


# --- Long traces ------------------------------------------------------------------------------
def send_in_turn(target: str, requests: list[bytes]) -> float:
    """Seconds one client takes to export ``requests`` one after the other."""
    with grpc.insecure_channel(target) as channel:
        export = channel.unary_unary(
            EXPORT, response_deserializer=ExportTraceServiceResponse.FromString
        )
        started = time.perf_counter()
        for raw in requests:
            export(raw, timeout=60)
        return time.perf_counter() - started


def long_trace_ratio(trackio_dir: Path, writers: int | None, rounds: int) -> list[float]:
    """Per round: the time a 2,000-span trace takes, 8 spans per request, over the time
    the same number of 8-span requests of short 4-span traces take (interleaved)."""
    collector = CollectorProcess(trackio_dir, max_queue_mib=32, writers=writers)
    short = Requests(LONG_PER_REQUEST)
    ratios = []
    try:
        send_in_turn(collector.target, [short.next() for _ in range(20)])  # warm up
        for n in range(rounds):
            long_requests = long_trace(n, LONG_SPANS, LONG_PER_REQUEST)
            short_s = send_in_turn(collector.target, [short.next() for _ in long_requests])
            long_s = send_in_turn(collector.target, long_requests)
            ratios.append(long_s / short_s)
            print(
                f"  round {n}: {len(long_requests)} requests of {LONG_PER_REQUEST} spans: "
                f"long trace {long_s:.2f}s, short traces {short_s:.2f}s"
            )
    finally:
        collector.stop()
    with sqlite3.connect(trackio_dir / f"{PROJECT}.db") as db:
        whole = db.execute(
            "SELECT COUNT(*) FROM traces WHERE json_extract(metadata, '$.span_count') = ?",
            (LONG_SPANS,),
        ).fetchone()[0]
    assert whole == rounds, f"{whole} of {rounds} long traces landed whole"
    return ratios


# --- Phases ------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--phases",
        default="0abcl",
        help="0=baseline a=throughput b=latency c=overload l=long traces",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase (default 10)")
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--latency-load", type=float, default=0.6, help="phase B rate / phase A throughput"
    )
    parser.add_argument("--overload-clients", type=int, default=16)
    parser.add_argument("--overload-queue-mib", type=int, default=8)
    parser.add_argument(
        "--writers", type=int, default=None, help="collector writer processes (its default)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary Trackio directory")
    args = parser.parse_args()

    requests = Requests(args.spans_per_request)
    work = Path(tempfile.mkdtemp(prefix="trackio-otel-bench-"))
    trackio_dir = work / "trackio"
    print(
        f"{os.cpu_count()} CPUs; requests of {requests.spans} spans, {len(requests.raw)} bytes "
        f"({len(requests.raw) / requests.spans:.0f} B/span); work dir {work}"
    )
    throughput = base = base_p99 = None

    if "0" in args.phases:
        base, base_p99 = baseline(requests, min(args.seconds, 5.0), work / "baseline.db")
        print(
            f"baseline  decode→translate→sqlite3 executemany, 1 thread: {base:,.0f} spans/s, "
            f"p99 {base_p99:.0f} ms per request"
        )

    if "a" in args.phases or "b" in args.phases:
        collector = CollectorProcess(trackio_dir, max_queue_mib=32, writers=args.writers)
        try:
            if "a" in args.phases:
                tally, elapsed = run_clients(collector.target, requests, args.clients, args.seconds)
                throughput, loaded_wal = tally.ok_spans / elapsed, wal_bytes(trackio_dir)
                spans, traces = count_rows(trackio_dir)
                print(
                    f"A throughput  {args.clients} clients {elapsed:.1f}s: "
                    f"{throughput:,.0f} spans/s committed ({tally.ok_spans} spans OK, "
                    f"refused={tally.refused}, errors={tally.errors}); "
                    f"p50={percentile(tally.latencies_ms, 50):.0f} ms "
                    f"p99={percentile(tally.latencies_ms, 99):.0f} ms; "
                    f"RSS now {collector.rss_mib():.0f} MiB"
                )
                print(
                    f"  database: {spans} otel_spans, {traces} traces; "
                    + trackio_reader_check(trackio_dir, traces)
                )
                if spans < tally.ok_spans or traces < tally.ok_spans // SPANS_PER_TRACE:
                    print("  MISSING ROWS: acknowledged spans are not all in the database")
                    return 1
                if base:
                    again, _ = baseline(requests, min(args.seconds, 5.0), work / "again.db")
                    mean = (base + again) / 2
                    print(
                        f"  against the baseline: {throughput / mean:.2f}x "
                        f"({throughput:,.0f} / {mean:,.0f} spans/s, the baseline's mean of "
                        f"{base:,.0f} before and {again:,.0f} after; goal >= 0.75x)"
                    )
                print("  " + disk_report(trackio_dir, spans, loaded_wal))
            if "b" in args.phases:
                rate = args.latency_load * (throughput or 10_000)
                tally, elapsed = run_clients(
                    collector.target, requests, args.clients, args.seconds, rate_spans=rate
                )
                print(
                    f"B latency  offered {rate:,.0f} spans/s for {elapsed:.1f}s: "
                    f"{tally.ok_spans / elapsed:,.0f} spans/s OK, {tally.ok_requests} requests, "
                    f"p50={percentile(tally.latencies_ms, 50):.0f} ms "
                    f"p99={percentile(tally.latencies_ms, 99):.0f} ms "
                    f"max={max(tally.latencies_ms, default=0):.0f} ms, refused={tally.refused}"
                    + (f" (baseline's p99 per request: {base_p99:.0f} ms)" if base_p99 else "")
                )
        finally:
            collector.stop()

    if "c" in args.phases:
        collector = CollectorProcess(
            trackio_dir, max_queue_mib=args.overload_queue_mib, writers=args.writers
        )
        peak, stop = [collector.rss_mib()], threading.Event()

        def sample() -> None:
            while not stop.wait(0.1):
                peak.append(collector.rss_mib())

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            tally, elapsed = run_clients(
                collector.target,
                requests,
                args.overload_clients,
                args.seconds,
                refused_pause_s=0.01,
            )
        finally:
            stop.set()
            sampler.join()
            collector.stop()
        attempts = tally.ok_requests + tally.refused + sum(tally.errors.values())
        print(
            f"C overload  {args.overload_clients} clients, queue {args.overload_queue_mib} MiB, "
            f"{elapsed:.1f}s: peak RSS {max(peak):.0f} MiB (idle at start {peak[0]:.0f} MiB), "
            f"{tally.ok_spans / elapsed:,.0f} spans/s OK, refused {tally.refused} of "
            f"{attempts} requests ({tally.retry_info} with RetryInfo), errors={tally.errors}"
        )

    if "l" in args.phases:
        ratios = long_trace_ratio(work / "long", args.writers, rounds=2)
        print(
            f"L long trace  {LONG_SPANS} spans, {LONG_PER_REQUEST} per request, against short "
            f"4-span traces in as many requests: time per span "
            f"{min(ratios):.2f}-{max(ratios):.2f}x (goal <= 1.5x); each landed whole"
        )

    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
