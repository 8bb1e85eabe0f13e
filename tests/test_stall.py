"""One client never stalls the others: HTTP/2 streams that never send their message, and
slowloris HTTP clients, while a real exporter's Export and the health check still succeed.

Each check runs with a deadline (a stalled server fails it instead of hanging the suite);
the old thread-pool gRPC server blocked every Export until the silent connection closed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager, suppress

import grpc
import h2.config
import h2.connection
import h2.events
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.conftest import local_config, traces_of
from tests.test_http_receiver import finished_spans
from trackio_otel.collector import Collector
from trackio_otel.collector.receiver import MAX_STREAMS_PER_CONNECTION

SILENT_STREAMS = 64
"""Four times the old server's 16 worker threads."""


@contextmanager
def silent_grpc_streams(port: int, n: int = SILENT_STREAMS) -> Iterator[list[h2.events.Event]]:
    """One connection that starts ``n`` Export calls and never sends their messages; yields
    what the server answered meanwhile."""
    with closing(socket.create_connection(("127.0.0.1", port))) as sock:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        for i in range(n):
            conn.send_headers(
                1 + 2 * i,
                [
                    (":method", "POST"),
                    (":scheme", "http"),
                    (":authority", f"127.0.0.1:{port}"),
                    (":path", "/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                ],
            )
        sock.sendall(conn.data_to_send())
        # Answer what the server sends first (SETTINGS, PING) as a real client does: until
        # its SETTINGS are acknowledged gRPC does not start the calls.
        sock.settimeout(0.5)
        events = []
        with suppress(TimeoutError):
            while data := sock.recv(65536):
                events += conn.receive_data(data)
                sock.sendall(conn.data_to_send())
        yield events


@contextmanager
def slowloris(port: int, n: int = 32) -> Iterator[None]:
    """``n`` connections with half a request line, and ``n`` that promise a body and send
    one byte of it."""
    with ExitStack() as stack:
        for i in range(n):
            half = stack.enter_context(closing(socket.create_connection(("127.0.0.1", port))))
            half.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Ty")
            body = stack.enter_context(closing(socket.create_connection(("127.0.0.1", port))))
            body.sendall(
                b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/x-protobuf\r\nContent-Length: 100000\r\n\r\n"
                + bytes([i])
            )
        yield


def healthy(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        status = check(health_pb2.HealthCheckRequest(), timeout=10).status
    return status == health_pb2.HealthCheckResponse.SERVING


def export(exporter, project: str, name: str) -> SpanExportResult:
    try:
        return exporter.export(finished_spans(project, name))
    finally:
        exporter.shutdown()


def test_silent_http2_streams_block_neither_exports_nor_health(collector, project):
    with silent_grpc_streams(collector.port), silent_grpc_streams(collector.port):
        assert healthy(collector.port)
        grpc_exporter = GrpcSpans(endpoint=f"127.0.0.1:{collector.port}", insecure=True, timeout=10)
        http_url = f"http://127.0.0.1:{collector.http_port}/v1/traces"
        assert export(grpc_exporter, project, "past-silent-streams") == SpanExportResult.SUCCESS
        assert export(HttpSpans(endpoint=http_url, timeout=10), project, "beside-them") == (
            SpanExportResult.SUCCESS
        )
    assert {t["key"] for t in traces_of(project)} == {"past-silent-streams", "beside-them"}


def test_a_connection_holds_a_bounded_number_of_calls(collector):
    n = MAX_STREAMS_PER_CONNECTION + 50
    with silent_grpc_streams(collector.port, n) as answered:
        refused = [e for e in answered if isinstance(e, h2.events.StreamReset)]
        assert len(refused) == n - MAX_STREAMS_PER_CONNECTION
        assert healthy(collector.port)


def test_slowloris_http_clients_block_nobody(collector, project):
    with slowloris(collector.http_port):
        http_url = f"http://127.0.0.1:{collector.http_port}/v1/traces"
        exporter = HttpSpans(endpoint=http_url, timeout=10)
        assert export(exporter, project, "past-slowloris") == SpanExportResult.SUCCESS
        assert healthy(collector.port)
    assert {t["key"] for t in traces_of(project)} == {"past-slowloris"}


def read_until_closed(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (a deadline fails the test)."""
    sock.settimeout(10)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def test_stalled_requests_get_408_or_are_closed_and_free_their_sockets(trackio_dir, project):
    """Once ``http_read_timeout_s`` passes: a client that promised a body and stopped
    sending it gets 408 with a Status naming the stall, and its connection closed; one
    that sent half its headers, and one that sent nothing, are closed. Nothing they sent
    is stored, and a real exporter meanwhile lands."""
    with Collector(local_config(trackio_dir, http_read_timeout_s=0.5)) as c, ExitStack() as stack:
        s, half, silent = (
            stack.enter_context(closing(socket.create_connection(("127.0.0.1", c.http_port))))
            for _ in range(3)
        )
        s.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
        )
        half.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Ty")
        http_url = f"http://127.0.0.1:{c.http_port}/v1/traces"
        assert export(HttpSpans(endpoint=http_url, timeout=10), project, "beside") == (
            SpanExportResult.SUCCESS
        )
        answer = read_until_closed(s)
        assert read_until_closed(half) == read_until_closed(silent) == b""  # closed unanswered
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), head
    status = json.loads(body)
    assert status["code"] == code_pb2.DEADLINE_EXCEEDED
    assert "no body bytes for 0.5 s (got 1)" in status["message"]
    assert {t["key"] for t in traces_of(project)} == {"beside"}
