"""Every convention family of reference §6.3, sent over real OTLP/gRPC and read back through
Trackio: recorded payloads from the real instrumentations, and spans built with the real OTel
SDK where a form (OpenLLMetry ≤0.54, OpenLIT, Traceloop decorators) has no recording."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from tests.conftest import AGENT_ROLES, load_fixture, traces_of
from trackio_otel.translate.conventions.media import MAX_IMAGE_BYTES

T0 = 1_800_000_000_000_000_000
MS = 1_000_000
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


def send_fixture(endpoint: str, name: str, project: str) -> None:
    traces, _ = load_fixture(name, project)
    with grpc.insecure_channel(endpoint) as channel:
        response = trace_service_pb2_grpc.TraceServiceStub(channel).Export(traces)
    assert not response.HasField("partial_success"), response


@contextmanager
def tracer(endpoint: str, project: str, service: str = "conv-test") -> Iterator[Tracer]:
    """The real SDK exporting to the collector; every span is acked (committed) on end."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "trackio.project": project})
    )
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    )
    try:
        yield provider.get_tracer("conventions-test")
    finally:
        provider.shutdown()


def span(t: Tracer, name: str, attrs: dict[str, Any], start: int, end: int, parent=None, **kw):
    s = t.start_span(
        name,
        context=set_span_in_context(parent) if parent is not None else None,
        attributes=attrs,
        start_time=T0 + start * MS,
    )
    for event_name, event_attrs in kw.get("events", []):
        s.add_event(event_name, event_attrs, timestamp=T0 + start * MS)
    if kw.get("error"):
        s.set_status(Status(StatusCode.ERROR, kw["error"]))
    return s, T0 + end * MS


def one_trace(project: str) -> dict:
    (trace,) = traces_of(project)
    return trace


def agent_summary(trace: dict) -> dict:
    """What must not depend on which instrumentation recorded the agent loop."""
    generations = [s for s in trace["spans"] if s["kind"] == "generation"]
    tools = [s for s in trace["spans"] if s["kind"] == "tool"]
    return {
        "messages": trace["messages"],
        "kinds": sorted(s["kind"] for s in trace["spans"]),
        "usage": [
            {k: s["usage"][k] for k in ("input_tokens", "output_tokens", "total_tokens")}
            for s in generations
        ],
        "models": [s["model"] for s in generations],
        "tool_ids": [s["id"] for s in tools],
        "tool_call_ids": [c["id"] for m in trace["messages"] for c in m.get("tool_calls", [])],
        "tokens": [trace["metadata"].get(k) for k in ("input_tokens", "output_tokens")],
    }


# --- The same agent loop, three instrumentations --------------------------------------------
def test_openinference_and_openllmetry_agent_loops_match_otel_genai(endpoint, project):
    summaries = {}
    for name in ("new_span_only", "openinference", "openllmetry"):
        send_fixture(endpoint, name, f"{project}-{name}")
        agent = next(
            t for t in traces_of(f"{project}-{name}") if t["key"] == "invoke_agent WeatherBot"
        )
        summaries[name] = agent_summary(agent)
    otel = summaries["new_span_only"]
    assert [m["role"] for m in otel["messages"]] == AGENT_ROLES
    assert otel["tool_ids"] == otel["tool_call_ids"] == [otel["messages"][3]["tool_call_id"]]
    assert otel["kinds"] == ["generation", "generation", "span", "tool"]
    assert otel["usage"][1] == {"input_tokens": 58, "output_tokens": 12, "total_tokens": 70}
    assert otel["models"] == ["gpt-4o-mini-2024-07-18"] * 2
    assert summaries["openinference"] == otel
    assert summaries["openllmetry"] == otel


def test_openinference_fixture_stream_error_and_embeddings(endpoint, project):
    send_fixture(endpoint, "openinference", project)
    traces = traces_of(project)
    agent = next(t for t in traces if t["key"] == "invoke_agent WeatherBot")
    assert agent["metadata"]["conventions"] == ["openinference", "otel_genai"]
    assert agent["metadata"]["service_name"] == "semconv-lab"
    chats = [t for t in traces if t["key"] == "ChatCompletion"]
    streamed = next(t for t in chats if t["metadata"]["status"] == "success")
    assert streamed["messages"][-1] == {
        "role": "assistant",
        "content": "It is rainy and 57°F in Paris.",
    }
    assert streamed["spans"][0]["usage"]["total_tokens"] == 70
    failed = next(t for t in chats if t["metadata"]["status"] == "error")
    (span_,) = failed["spans"]
    assert span_["status"] == "error"
    assert span_["error"].startswith("InternalServerError: Error code: 500")
    assert "input_tokens" not in failed["metadata"]
    (emb,) = next(t for t in traces if t["key"] == "CreateEmbeddings")["spans"]
    assert emb["kind"] == "span"
    assert emb["model"] == "text-embedding-3-small"
    assert emb["usage"] == {"input_tokens": 5, "output_tokens": 0, "total_tokens": 5}


# --- OpenInference details --------------------------------------------------------------------
def test_openinference_tool_span_session_metadata_and_dual_emission(endpoint, project):
    with tracer(endpoint, project) as t:
        root, root_end = span(
            t,
            "WeatherBot",
            {
                "openinference.span.kind": "AGENT",
                "input.value": "Weather in Paris?",
                "input.mime_type": "text/plain",
                "output.value": "Rainy.",
                "session.id": "sess-42",
                "user.id": "user-7",
                "metadata": '{"run": "demo"}',
                "llm.token_count.prompt": 99,
                "llm.token_count.completion": 29,
            },
            0,
            100,
        )
        llm, llm_end = span(
            t,
            "ChatCompletion",
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini-2024-07-18",
                "gen_ai.request.model": "wrong-model",  # OI's dual emission puts junk here
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.usage.input_tokens": 1,
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "Weather in Paris?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "weather",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": (
                    '{"city": "Paris"}'
                ),
                "llm.token_count.prompt": 40,
                "llm.token_count.completion": 10,
                "llm.token_count.total": 50,
                "llm.token_count.prompt_details.cache_read": 8,
                "llm.token_count.completion_details.reasoning": 3,
                "llm.cost.total": 0.002,
                "llm.invocation_parameters": '{"temperature": 0.2}',
            },
            1,
            40,
            parent=root,
        )
        llm.end(llm_end)
        tool, tool_end = span(
            t,
            "weather",
            {
                "openinference.span.kind": "TOOL",
                "tool.name": "weather",
                "tool.id": "call_1",
                "input.value": '{"city": "Paris"}',
                "input.mime_type": "application/json",
                "output.value": "Rainy.",
                "output.mime_type": "text/plain",
            },
            41,
            50,
            parent=root,
        )
        tool.end(tool_end)
        root.end(root_end)
    trace = one_trace(project)
    spans = {s["name"]: s for s in trace["spans"]}
    gen = spans["ChatCompletion"]
    assert gen["kind"] == "generation"
    assert gen["model"] == "gpt-4o-mini-2024-07-18"
    assert gen["usage"] == {
        "input_tokens": 40,
        "output_tokens": 10,
        "total_tokens": 50,
        "cache_read_input_tokens": 8,
        "reasoning_tokens": 3,
    }
    assert gen["cost_usd"] == 0.002
    assert gen["metadata"]["llm.invocation_parameters"] == {"temperature": 0.2}
    assert gen["metadata"]["convention"] == "openinference"
    assert spans["weather"]["kind"] == "tool"
    assert spans["weather"]["id"] == "call_1"
    assert spans["weather"]["input"] == {"city": "Paris"}
    assert spans["weather"]["output"] == "Rainy."
    agent = spans["WeatherBot"]
    assert agent["kind"] == "span"
    assert "usage" not in agent
    assert agent["metadata"]["aggregate_usage"]["total_tokens"] == 128
    assert agent["metadata"]["metadata"] == {"run": "demo"}
    assert (agent["input"], agent["output"]) == ("Weather in Paris?", "Rainy.")
    meta = trace["metadata"]
    assert (meta["session_id"], meta["user_id"]) == ("sess-42", "user-7")
    assert (meta["input_tokens"], meta["total_tokens"], meta["cost_usd"]) == (40, 50, 0.002)
    assert meta["service_name"] == "conv-test"
    assert trace["messages"][1]["tool_calls"][0]["id"] == "call_1"


def test_openinference_redacted_content_counts_as_not_captured(endpoint, project):
    with tracer(endpoint, project) as t:
        s, end = span(
            t,
            "ChatCompletion",
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "m",
                "input.value": "__REDACTED__",
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "__REDACTED__",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "__REDACTED__",
                "llm.finish_reason": "stop",
            },
            0,
            5,
        )
        s.end(end)
    trace = one_trace(project)
    assert [m["content"] for m in trace["messages"]] == [None, None]
    assert "__redacted__" not in json.dumps(trace).lower()


# --- OpenLLMetry ≤0.54 flattened and Traceloop decorator spans --------------------------------
# Reference appendix C.5: the keys opentelemetry-instrumentation-openai 0.54.0 emitted.
FLATTENED_CHAT = {
    "llm.request.type": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "llm.headers": "None",
    "llm.is_streaming": False,
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "You are a weather bot.",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": "What's the weather in Paris?",
    "gen_ai.prompt.2.role": "assistant",
    "gen_ai.prompt.2.tool_calls.0.id": "call_VSPy",
    "gen_ai.prompt.2.tool_calls.0.name": "get_weather",
    "gen_ai.prompt.2.tool_calls.0.arguments": '{"location": "Paris"}',
    "gen_ai.prompt.3.role": "tool",
    "gen_ai.prompt.3.content": '{"conditions": "rainy"}',
    "gen_ai.prompt.3.tool_call_id": "call_VSPy",
    "llm.request.functions.0.name": "get_weather",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "llm.usage.total_tokens": 70,
    "gen_ai.usage.output_tokens": 12,
    "gen_ai.usage.input_tokens": 58,
    "gen_ai.usage.cache_read_input_tokens": 4,
    "llm.usage.reasoning_tokens": 0,
    "gen_ai.completion.0.finish_reason": "stop",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.content": "It is rainy.",
    "traceloop.association.properties.session_id": "tl-sess",
    "traceloop.association.properties.user_id": "tl-user",
}


def test_openllmetry_flattened_and_traceloop_entity_spans(endpoint, project):
    assoc = {
        "traceloop.association.properties.session_id": "tl-sess",
        "traceloop.association.properties.user_id": "tl-user",
    }
    with tracer(endpoint, project) as t:
        wf, wf_end = span(
            t,
            "weather.workflow",
            {
                "traceloop.span.kind": "workflow",
                "traceloop.entity.name": "weather",
                "traceloop.entity.input": '{"args": ["Paris"], "kwargs": {}}',
                "traceloop.entity.output": '"It is rainy."',
                **assoc,
            },
            0,
            100,
        )
        tool, tool_end = span(
            t,
            "get_weather.tool",
            {
                "traceloop.span.kind": "tool",
                "traceloop.entity.name": "get_weather",
                "traceloop.entity.input": '{"args": [], "kwargs": {"location": "Paris"}}',
                "traceloop.entity.output": '{"conditions": "rainy"}',
                **assoc,
            },
            10,
            20,
            parent=wf,
        )
        tool.end(tool_end)
        chat, chat_end = span(t, "openai.chat", FLATTENED_CHAT, 30, 90, parent=wf)
        chat.end(chat_end)
        wf.end(wf_end)
    trace = one_trace(project)
    spans = {s["name"]: s for s in trace["spans"]}
    gen = spans["openai.chat"]
    assert gen["kind"] == "generation"
    assert gen["metadata"]["convention"] == "openllmetry"
    assert gen["model"] == "gpt-4o-mini-2024-07-18"
    assert gen["usage"] == {
        "input_tokens": 58,
        "output_tokens": 12,
        "total_tokens": 70,
        "cache_read_input_tokens": 4,
        "reasoning_tokens": 0,
    }
    assert gen["metadata"]["llm.request.functions"] == [{"name": "get_weather"}]
    assert "llm.headers" not in gen["metadata"]
    assert not any(k.startswith("gen_ai.prompt.") for k in gen["metadata"])
    assert trace["messages"] == [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "What's the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_VSPy",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"conditions": "rainy"}', "tool_call_id": "call_VSPy"},
        {"role": "assistant", "content": "It is rainy."},
    ]
    assert spans["get_weather.tool"]["kind"] == "tool"
    assert spans["get_weather.tool"]["input"] == {"location": "Paris"}
    assert spans["get_weather.tool"]["output"] == {"conditions": "rainy"}
    assert spans["weather.workflow"]["kind"] == "span"
    assert spans["weather.workflow"]["input"] == "Paris"
    assert spans["weather.workflow"]["metadata"]["convention"] == "traceloop"
    meta = trace["metadata"]
    assert (meta["session_id"], meta["user_id"]) == ("tl-sess", "tl-user")
    assert meta["conventions"] == ["openllmetry", "traceloop"]
    assert meta["total_tokens"] == 70


# --- OpenLIT and OTel GenAI span events ---------------------------------------------------------
def test_openlit_cost_and_usage(endpoint, project):
    with tracer(endpoint, project) as t:
        s, end = span(
            t,
            "chat gpt-4o",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 20,
                "gen_ai.usage.output_tokens": 5,
                "gen_ai.usage.total_tokens": 25,
                "gen_ai.usage.reasoning_tokens": 2,
                "gen_ai.usage.cost": 0.0125,
                "gen_ai.application_name": "demo-app",
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [
                                {"type": "reasoning", "content": "greet back"},
                                {"type": "text", "content": "hello"},
                            ],
                            "finish_reason": "stop",
                        }
                    ]
                ),
            },
            0,
            10,
        )
        s.end(end)
    trace = one_trace(project)
    (gen,) = trace["spans"]
    assert gen["cost_usd"] == 0.0125
    assert gen["usage"]["total_tokens"] == 25
    assert gen["usage"]["reasoning_tokens"] == 2
    assert gen["metadata"]["gen_ai.application_name"] == "demo-app"
    assert trace["metadata"]["cost_usd"] == 0.0125
    assert trace["messages"][-1] == {
        "role": "assistant",
        "content": "hello",
        "reasoning_content": "greet back",
    }


def test_otel_genai_content_span_events(endpoint, project):
    prompt = [{"role": "user", "content": "2+2?"}]
    completion = [{"role": "assistant", "content": "4"}]
    with tracer(endpoint, project) as t:
        s, end = span(
            t,
            "chat m",
            {"gen_ai.system": "openai", "gen_ai.operation.name": "chat"},
            0,
            10,
            events=[
                ("gen_ai.content.prompt", {"gen_ai.prompt": json.dumps(prompt)}),
                ("gen_ai.content.completion", {"gen_ai.completion": json.dumps(completion)}),
            ],
        )
        s.end(end)
    trace = one_trace(project)
    assert trace["messages"] == prompt + completion
    assert trace["spans"][0]["kind"] == "generation"
    assert trace["metadata"]["conventions"] == ["otel_genai_legacy"]


def test_failed_call_keeps_error_type_and_message(endpoint, project):
    with tracer(endpoint, project) as t:
        s, end = span(
            t,
            "chat boom",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "error.type": "<class 'openai.InternalServerError'>",
            },
            0,
            3,
        )
        s.end(end)
    (gen,) = one_trace(project)["spans"]
    assert (gen["status"], gen["error"]) == ("error", "InternalServerError")


# --- Nested generations ---------------------------------------------------------------------------
def test_framework_generation_wrapping_provider_chat_counts_usage_once(endpoint, project):
    with tracer(endpoint, project) as t:
        outer, outer_end = span(
            t,
            "ChatOpenAI",
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini",
                "llm.token_count.prompt": 58,
                "llm.token_count.completion": 12,
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "hi",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "hello",
            },
            0,
            50,
        )
        inner, inner_end = span(
            t,
            "chat gpt-4o-mini",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": 58,
                "gen_ai.usage.output_tokens": 12,
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [{"type": "text", "content": "hello"}],
                            "finish_reason": "stop",
                        }
                    ]
                ),
            },
            5,
            45,
            parent=outer,
        )
        inner.end(inner_end)
        outer.end(outer_end)
    trace = one_trace(project)
    spans = {s["name"]: s for s in trace["spans"]}
    assert spans["ChatOpenAI"]["kind"] == "span"
    assert "usage" not in spans["ChatOpenAI"]
    assert spans["chat gpt-4o-mini"]["usage"]["total_tokens"] == 70
    assert trace["metadata"]["total_tokens"] == 70
    assert [m["role"] for m in trace["messages"]] == ["user", "assistant"]


# --- Images --------------------------------------------------------------------------------------
def _image_spans(t: Tracer, big_url: str) -> None:
    inputs = [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "What is in these?"},
                {
                    "type": "blob",
                    "modality": "image",
                    "mime_type": "image/png",
                    "content": base64.b64encode(PNG).decode(),
                },
                {"type": "uri", "modality": "image", "uri": "https://example.com/cat.jpg"},
                {
                    "type": "blob",
                    "modality": "image",
                    "mime_type": "image/png",
                    "content": big_url.split(",", 1)[1],
                },
            ],
        }
    ]
    s, end = span(
        t,
        "chat vision",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.input.messages": json.dumps(inputs),
        },
        0,
        10,
    )
    s.end(end)
    oi, oi_end = span(
        t,
        "ChatCompletion",
        {
            "openinference.span.kind": "LLM",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.contents.0.message_content.type": "text",
            "llm.input_messages.0.message.contents.0.message_content.text": "And this?",
            "llm.input_messages.0.message.contents.1.message_content.type": "image",
            "llm.input_messages.0.message.contents.1.message_content.image.image.url": PNG_URL,
        },
        20,
        30,
    )
    oi.end(oi_end)


def test_images_become_trackio_media_once(endpoint, project, trackio_dir: Path):
    big_url = "data:image/png;base64," + base64.b64encode(b"\0" * (MAX_IMAGE_BYTES + 1)).decode()
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"trackio.project": project}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _image_spans(provider.get_tracer("images"), big_url)
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    for _ in range(2):  # a retried export must not add files
        assert exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
    exporter.shutdown()
    by_key = {tr["key"]: tr for tr in traces_of(project)}
    vision = by_key["chat vision"]
    content = vision["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is in these?"}
    image = content[1]
    assert image["_type"] == "trackio.image"
    run = vision["run"]
    assert image["file_path"].startswith(f"{project}/{run}/{vision['step']}/")
    assert image["file_path"].endswith(".png")
    assert (trackio_dir / "media" / image["file_path"]).read_bytes() == PNG
    assert content[2] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    assert content[3]["type"] == "text"
    assert "exceeds the 8 MiB limit" in content[3]["text"]
    assert vision["spans"][0]["input"][0]["content"][1] == image

    oi = by_key["ChatCompletion"]["messages"][0]["content"]
    assert oi[0] == {"type": "text", "text": "And this?"}
    assert oi[1]["_type"] == "trackio.image"
    assert (trackio_dir / "media" / oi[1]["file_path"]).read_bytes() == PNG
    files = [p for p in (trackio_dir / "media" / project).rglob("*") if p.is_file()]
    assert len(files) == 2  # one per trace (step); the retried export wrote nothing new
