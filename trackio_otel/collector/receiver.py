"""OTLP/gRPC receiver: TraceService, MetricsService and LogsService on one server.

Handlers take the raw request bytes and pass them to a writer process, which decodes them
itself, so an undecodable payload is answered INVALID_ARGUMENT with the decoder's reason
(gRPC's own deserializer would answer INTERNAL). Status codes, as the OTel exporters read
them:

- OK: committed; partial success names rejected items (bad ids, reserved project names).
- INVALID_ARGUMENT: the payload could not be decoded (corrupt wire format, invalid UTF-8,
  or nesting past protobuf's fixed limit of 100 messages: about 31 kvlist levels inside a
  span attribute); nothing was kept. Not retried.
- RESOURCE_EXHAUSTED: the message exceeds ``max_message_bytes`` (gRPC's own check), or, with
  RetryInfo, the queue is full and the exporter retries after the delay.
- UNAVAILABLE: shutting down, the database stayed locked, or a writer process died;
  retried. Calls that arrive once shutdown began may instead be CANCELLED by gRPC itself,
  which OTLP also retries.
- INTERNAL: anything else; the message says what.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc.error_details_pb2 import RetryInfo
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb

from trackio_otel.collector.pipeline import Pipeline, QueueFull, ShuttingDown
from trackio_otel.writer import WriteError

log = logging.getLogger(__name__)
RETRY_DELAY_S = 1


@dataclass(frozen=True)
class Signal:
    """One OTLP service: its writer signal name and how to answer partial success."""

    name: str
    service: str
    response: type[Message]
    partial: type[Message]
    rejected_field: str


SIGNALS = (
    Signal(
        "traces",
        "opentelemetry.proto.collector.trace.v1.TraceService",
        trace_pb.ExportTraceServiceResponse,
        trace_pb.ExportTracePartialSuccess,
        "rejected_spans",
    ),
    Signal(
        "metrics",
        "opentelemetry.proto.collector.metrics.v1.MetricsService",
        metrics_pb.ExportMetricsServiceResponse,
        metrics_pb.ExportMetricsPartialSuccess,
        "rejected_data_points",
    ),
    Signal(
        "logs",
        "opentelemetry.proto.collector.logs.v1.LogsService",
        logs_pb.ExportLogsServiceResponse,
        logs_pb.ExportLogsPartialSuccess,
        "rejected_log_records",
    ),
)
_STATUS = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "internal": grpc.StatusCode.INTERNAL,
}


def export_handler(
    signal: Signal, pipeline: Pipeline
) -> Callable[[bytes, grpc.ServicerContext], Message]:
    def export(raw: bytes, context: grpc.ServicerContext) -> Message:
        try:
            reservation = pipeline.reserve(len(raw))
        except QueueFull as exc:
            retry = RetryInfo(retry_delay=Duration(seconds=RETRY_DELAY_S))
            context.set_trailing_metadata(
                (("google.rpc.retryinfo-bin", retry.SerializeToString()),)
            )
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except ShuttingDown as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        try:
            result = pipeline.write(signal.name, raw, reservation)
        except WriteError as exc:
            context.abort(_STATUS[exc.kind], str(exc))
        if result.errors:
            partial = signal.partial(error_message="; ".join(result.errors))
            setattr(partial, signal.rejected_field, result.rejected)
            return signal.response(partial_success=partial)
        return signal.response()

    return export


class Receiver:
    """The gRPC server. ``start()`` returns the bound port (pass port 0 for an ephemeral one)."""

    def __init__(
        self, pipeline: Pipeline, endpoint: str, max_message_bytes: int, workers: int = 16
    ):
        self.endpoint = endpoint
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp"),
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", 4 << 20),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    s.service,
                    {
                        "Export": grpc.unary_unary_rpc_method_handler(
                            export_handler(s, pipeline),
                            response_serializer=s.response.SerializeToString,
                        )
                    },
                )
                for s in SIGNALS
            ]
        )
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)

    def start(self) -> int:
        port = self._server.add_insecure_port(self.endpoint)
        if port == 0:
            raise OSError(f"could not listen on {self.endpoint}")
        self._server.start()
        for name in ("", *(s.service for s in SIGNALS)):
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return port

    def stop(self, grace_s: float) -> None:
        """Refuse new calls, let the ones in flight finish (they wait for their commit)."""
        self._health.enter_graceful_shutdown()
        self._server.stop(grace_s).wait()
