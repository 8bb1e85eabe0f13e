"""What the gRPC and HTTP receivers share: the three OTLP services and their answers."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb

from trackio_otel.writer import Result

RETRY_DELAY_S = 1
"""What a client told to back off (queue full, writer unavailable) is asked to wait."""


@dataclass(frozen=True)
class Signal:
    """One OTLP service: its writer signal name (also its HTTP path, ``/v1/<name>``), its
    gRPC service, and how to answer partial success."""

    name: str
    service: str
    response: type[Message]
    partial: type[Message]
    rejected_field: str

    def answer(self, result: Result) -> Message:
        """The export response for a committed request: partial success names what was
        rejected and why."""
        if not result.errors:
            return self.response()
        partial = self.partial(error_message="; ".join(result.errors))
        setattr(partial, self.rejected_field, result.rejected)
        return self.response(partial_success=partial)


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
