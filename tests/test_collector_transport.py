"""Transport details exporters rely on: gzip-compressed requests and the gRPC health service."""

import re

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.conftest import only_run, traces_of


def test_gzip_compressed_export_is_stored(endpoint, project):
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, compression=grpc.Compression.Gzip)
    provider = TracerProvider(resource=Resource.create({"trackio.project": project}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("gzipped", attributes={"k": "v" * 5000}):
        pass
    provider.shutdown()
    [trace] = traces_of(project)
    assert trace["key"] == "gzipped"
    assert trace["spans"][0]["metadata"]["k"] == "v" * 1024 + "…"  # long metadata is clipped
    # No run name given: <service.name>-<8 hex of the process>, one run per process.
    assert re.fullmatch(r"unknown_service.*-[0-9a-f]{8}", only_run(project)["name"])


def test_health_service_reports_serving_for_each_otlp_service(endpoint):
    with grpc.insecure_channel(endpoint) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in (
            "",
            "opentelemetry.proto.collector.trace.v1.TraceService",
            "opentelemetry.proto.collector.metrics.v1.MetricsService",
            "opentelemetry.proto.collector.logs.v1.LogsService",
        ):
            status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING
