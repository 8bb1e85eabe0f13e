"""The recorded OTel GenAI payloads, sent over gRPC, read back through Trackio."""

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tests.conftest import AGENT_ROLES, load_fixture, traces_of


def test_new_span_only_fixture_becomes_trackio_traces(endpoint, project):
    traces, _ = load_fixture("new_span_only", project)
    with grpc.insecure_channel(endpoint) as channel:
        response = trace_service_pb2_grpc.TraceServiceStub(channel).Export(traces)
    assert not response.HasField("partial_success")
    agent = next(t for t in traces_of(project) if t["key"] == "invoke_agent WeatherBot")
    roles = [m["role"] for m in agent["messages"]]
    assert roles == AGENT_ROLES
    call = agent["messages"][2]["tool_calls"][0]
    assert agent["messages"][3]["tool_call_id"] == call["id"]
    kinds = {s["name"]: s["kind"] for s in agent["spans"]}
    assert kinds == {
        "invoke_agent WeatherBot": "span",
        "chat gpt-4o-mini": "generation",
        "execute_tool get_weather": "tool",
    }
    tool = next(s for s in agent["spans"] if s["kind"] == "tool")
    assert tool["id"] == call["id"]


def test_legacy_events_join_their_spans_in_either_order(endpoint, project):
    traces, logs = load_fixture("legacy_content_true", project)
    with grpc.insecure_channel(endpoint) as channel:
        logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs)  # events before spans
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(traces)
    agent = next(t for t in traces_of(project) if t["key"] == "invoke_agent WeatherBot")
    assert [m["role"] for m in agent["messages"]] == AGENT_ROLES
    assert agent["messages"][-1]["content"].startswith("It is rainy")
