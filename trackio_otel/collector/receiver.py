"""OTLP/gRPC receiver: TraceService, MetricsService and LogsService on one asyncio server.

Handlers take the raw request bytes and pass them to a writer process, which decodes them
itself, so an undecodable payload is answered INVALID_ARGUMENT with the decoder's reason
(gRPC's own deserializer would answer INTERNAL). The server is gRPC's asyncio one: a call
whose client sends nothing costs a coroutine, not one of a fixed pool of threads (the
thread-pool server let 16 silent streams block every Export and the health check). Status
codes, as the OTel exporters read them:

- OK: committed; partial success names rejected items (bad ids, reserved project names).
- INVALID_ARGUMENT: the payload could not be decoded (corrupt wire format, invalid UTF-8,
  or nesting past protobuf's fixed limit of 100 messages: about 31 kvlist levels inside a
  span attribute); nothing was kept. Not retried.
- UNAUTHENTICATED: a token is set and the call did not carry it; nothing was kept.
- RESOURCE_EXHAUSTED: the message exceeds ``max_message_bytes`` (gRPC's own check), or, with
  RetryInfo, the queue is full and the exporter retries after the delay.
- UNAVAILABLE: shutting down, the database stayed locked, a writer process died or did not
  answer in time; retried. Calls that arrive once shutdown began may instead be CANCELLED
  by gRPC itself, which OTLP also retries.
- INTERNAL: anything else; the message says what.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc.error_details_pb2 import RetryInfo
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from trackio_otel.collector.config import Endpoint
from trackio_otel.collector.otlp import RETRY_DELAY_S, SIGNALS, Signal
from trackio_otel.collector.pipeline import Pipeline, QueueFull, ShuttingDown
from trackio_otel.collector.security import TLS, bearer_matches
from trackio_otel.writer import WriteError

MAX_STREAMS_PER_CONNECTION = 100
_STATUS = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "internal": grpc.StatusCode.INTERNAL,
}
_RETRY_INFO = (
    "google.rpc.retryinfo-bin",
    RetryInfo(retry_delay=Duration(seconds=RETRY_DELAY_S)).SerializeToString(),
)


def export_handler(
    signal: Signal, pipeline: Pipeline, token: str | None
) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[Message]]:
    async def export(raw: bytes, context: grpc.aio.ServicerContext) -> Message:
        if token is not None:
            authorization = dict(context.invocation_metadata() or ()).get("authorization")
            if not bearer_matches(authorization, token):
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token"
                )
        try:
            result = await pipeline.export(signal.name, raw)
        except QueueFull as exc:
            context.set_trailing_metadata((_RETRY_INFO,))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except ShuttingDown as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except WriteError as exc:
            await context.abort(_STATUS[exc.kind], str(exc))
        return signal.answer(result)

    return export


class Receiver:
    """The gRPC server, created and run on the collector's event loop."""

    def __init__(
        self,
        pipeline: Pipeline,
        endpoint: Endpoint,
        max_message_bytes: int,
        tls: TLS | None = None,
        token: str | None = None,
    ) -> None:
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", 4 << 20),
                ("grpc.so_reuseport", 0),
                # Calls a connection may hold open at once: a client that starts many and
                # never sends them costs bounded memory (an exporter uses one at a time).
                ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
            ],
        )
        self._server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    s.service,
                    {
                        "Export": grpc.unary_unary_rpc_method_handler(
                            export_handler(s, pipeline, token),
                            response_serializer=s.response.SerializeToString,
                        )
                    },
                )
                for s in SIGNALS
            ]
        )
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        address = str(endpoint)
        check_bindable(endpoint, "OTLP/gRPC")  # gRPC's own failure says only "Failed to bind"
        try:  # taken since the check: gRPC raises, or answers port 0
            if tls:
                self.port = self._server.add_secure_port(address, tls.grpc_credentials())
            else:
                self.port = self._server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise OSError(f"cannot listen on {address} for OTLP/gRPC: gRPC could not bind it")

    async def start(self) -> None:
        await self._server.start()
        for name in ("", *(s.service for s in SIGNALS)):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace_s: float | None) -> None:
        """Refuse new calls, let the ones in flight finish (they wait for their commit)."""
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_s)


def check_bindable(endpoint: Endpoint, what: str) -> None:
    """Raise ``OSError`` with the OS's reason if ``endpoint`` cannot be listened on."""
    try:
        with socket.create_server((endpoint.host.strip("[]"), endpoint.port)):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OSError(f"cannot listen on {endpoint} for {what}: {reason}") from None
