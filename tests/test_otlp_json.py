"""The OTLP/JSON decoder on its own: hex ids, both field spellings, integer enums, unknown
fields ignored, and a precise error for what cannot be decoded."""

import json

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from trackio_otel.writer.otlp_json import parse

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN, PARENT, LINKED = "eee19b7ec3c1b174", "eee19b7ec3c1b173", "0102030405060708"


def decode(message_type, tree):
    return parse(json.dumps(tree).encode(), message_type)


def test_span_ids_links_enums_and_both_spellings():
    request = decode(
        ExportTraceServiceRequest,
        {
            "resourceSpans": [
                {
                    "scope_spans": [
                        {
                            "spans": [
                                {
                                    "traceId": TRACE.upper(),
                                    "span_id": SPAN,
                                    "parentSpanId": PARENT,
                                    "kind": 2,
                                    "status": {"code": 2},
                                    "links": [{"traceId": TRACE, "spanId": LINKED}],
                                    "attributes": [
                                        {"key": "traceId", "value": {"stringValue": "not an id"}}
                                    ],
                                    "futureField": [1, 2],
                                }
                            ]
                        }
                    ]
                }
            ]
        },
    )
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert (span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex()) == (
        TRACE,
        SPAN,
        PARENT,
    )
    assert span.kind == Span.SPAN_KIND_SERVER and span.status.code == 2
    assert span.links[0].span_id.hex() == LINKED
    assert span.attributes[0].value.string_value == "not an id"  # a value, not an id field


def test_log_and_exemplar_ids():
    logs = decode(
        ExportLogsServiceRequest,
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": TRACE, "spanId": SPAN}]}]}]},
    )
    record = logs.resource_logs[0].scope_logs[0].log_records[0]
    assert (record.trace_id.hex(), record.span_id.hex()) == (TRACE, SPAN)
    point = {"asDouble": 1.5, "exemplars": [{"traceId": TRACE, "spanId": SPAN, "asInt": "3"}]}
    metrics = decode(
        ExportMetricsServiceRequest,
        {
            "resourceMetrics": [
                {"scopeMetrics": [{"metrics": [{"gauge": {"dataPoints": [point]}}]}]}
            ]
        },
    )
    exemplar = metrics.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0]
    assert exemplar.exemplars[0].trace_id.hex() == TRACE and exemplar.exemplars[0].as_int == 3


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"\xff", "not JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"abc"}]}]}]}', "spanId"),
        (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"a b "}]}]}]}', "traceId"),
        (b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}', "name"),
        (b"[" * 50_000 + b"]" * 50_000, "not JSON"),
    ],
)
def test_what_cannot_be_decoded_is_named(payload, says):
    with pytest.raises(DecodeError, match=says):
        parse(payload, ExportTraceServiceRequest)
