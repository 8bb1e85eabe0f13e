"""The program ``test_frameworks`` runs, once per agent framework, in its own process (each
sets up its own global OTel providers and patches its own clients).

``python -m tests.framework_agents <framework> <base_url> <otlp_endpoint> <project>`` (a
``host:port`` for OTLP/gRPC, an ``http://`` URL for OTLP/HTTP where a framework supports it) builds
the framework's weather agent on the stub server (tests/stub_openai.py), with the
framework's usual OpenTelemetry setup exporting over OTLP/gRPC, and runs three scenarios,
each under its own root span ``scenario <name>``: ``agent`` (question → tool call → tool
result → answer), ``stream`` (the same, streamed) and ``error`` (the model answers HTTP 500).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

SYSTEM = "You are a weather bot."
QUESTION = "What's the weather in Paris?"
WEATHER = {"location": "Paris", "conditions": "rainy", "temp_f": 57}
Scenario = Callable[[str], AbstractContextManager]


def get_weather(location: str) -> dict:
    """Get the weather for a city.

    Args:
        location: the city
    """
    return {**WEATHER, "location": location}


def grpc_provider(endpoint: str, project: str, service: str):
    """The plain OTel SDK setup every framework's docs start from, aimed at the collector."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "trackio.project": project})
    )
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    )
    return provider


def run_strands(base_url: str, endpoint: str, project: str) -> None:
    """Strands exports through ``StrandsTelemetry``: its own ``setup_otlp_exporter`` (OTLP/HTTP)
    for an ``http://`` endpoint, else a gRPC exporter on the provider it sets up globally."""
    os.environ["OTEL_RESOURCE_ATTRIBUTES"] = f"trackio.project={project}"
    os.environ["OTEL_SERVICE_NAME"] = "agent-strands"
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from strands import Agent, tool
    from strands.models.openai import OpenAIModel
    from strands.telemetry import StrandsTelemetry

    telemetry = StrandsTelemetry()
    if endpoint.startswith("http://"):
        telemetry.setup_otlp_exporter(endpoint=f"{endpoint}/v1/traces")
    else:
        telemetry.tracer_provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
        )
    tracer = telemetry.tracer_provider.get_tracer("framework-agents")
    weather = tool(get_weather)

    def agent(model: str, stream: bool) -> Agent:
        return Agent(
            model=OpenAIModel(
                client_args={"base_url": base_url, "api_key": "sk-stub", "max_retries": 0},
                model_id=model,
                params={"stream": stream},
            ),
            tools=[weather],
            system_prompt=SYSTEM,
            callback_handler=None,
        )

    with tracer.start_as_current_span("scenario agent"):
        agent("gpt-4o-mini", stream=False)(QUESTION)
    with tracer.start_as_current_span("scenario stream"):
        agent("gpt-4o-mini", stream=True)(QUESTION)
    with tracer.start_as_current_span("scenario error"):
        expect_failure(lambda: agent("boom", stream=False)(QUESTION))
    telemetry.tracer_provider.shutdown()


def run_langgraph(base_url: str, endpoint: str, project: str) -> None:
    """LangGraph's prebuilt ReAct agent on ``ChatOpenAI``, traced by OpenInference's
    LangChain instrumentor (the setup Phoenix and Arize document)."""
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent
    from openinference.instrumentation.langchain import LangChainInstrumentor

    provider = grpc_provider(endpoint, project, "agent-langgraph")
    LangChainInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("framework-agents")
    weather = tool(get_weather)

    def agent(model: str, stream: bool):
        llm = ChatOpenAI(
            model=model,
            base_url=base_url,
            api_key="sk-stub",
            max_retries=0,
            streaming=stream,
            stream_usage=True,
        )
        return create_react_agent(llm, [weather], prompt=SYSTEM)

    question = {"messages": [("user", QUESTION)]}
    with tracer.start_as_current_span("scenario agent"):
        agent("gpt-4o-mini", stream=False).invoke(question)
    with tracer.start_as_current_span("scenario stream"):
        for _ in agent("gpt-4o-mini", stream=True).stream(question, stream_mode="messages"):
            pass
    with tracer.start_as_current_span("scenario error"):
        expect_failure(lambda: agent("boom", stream=False).invoke(question))
    provider.shutdown()


def run_openai_agents(base_url: str, endpoint: str, project: str) -> None:
    """The OpenAI Agents SDK with OpenInference's processor: its default Responses model, and
    ``OpenAIChatCompletionsModel`` streamed."""
    from agents import (
        Agent,
        ModelSettings,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    provider = grpc_provider(endpoint, project, "agent-openai-agents")
    OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)
    set_tracing_disabled(False)
    tracer = provider.get_tracer("framework-agents")
    client = AsyncOpenAI(base_url=base_url, api_key="sk-stub", max_retries=0)
    weather = function_tool(get_weather)

    def agent(model) -> Agent:
        settings = ModelSettings(include_usage=True)  # streamed chat completions report usage
        return Agent(
            name="weather",
            instructions=SYSTEM,
            tools=[weather],
            model=model,
            model_settings=settings,
        )

    async def streamed() -> None:
        chat = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)
        result = Runner.run_streamed(agent(chat), QUESTION)
        async for _ in result.stream_events():
            pass

    with tracer.start_as_current_span("scenario agent"):
        model = OpenAIResponsesModel(model="gpt-4o-mini", openai_client=client)
        Runner.run_sync(agent(model), QUESTION)
    with tracer.start_as_current_span("scenario stream"):
        asyncio.run(streamed())
    with tracer.start_as_current_span("scenario error"):
        model = OpenAIResponsesModel(model="boom", openai_client=client)
        expect_failure(lambda: Runner.run_sync(agent(model), QUESTION))
    provider.shutdown()


def run_smolagents(base_url: str, endpoint: str, project: str) -> None:
    """smolagents' ``ToolCallingAgent`` on ``OpenAIServerModel``, traced by OpenInference's
    smolagents instrumentor (the setup smolagents' docs give)."""
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor
    from smolagents import OpenAIServerModel, ToolCallingAgent, tool

    provider = grpc_provider(endpoint, project, "agent-smolagents")
    SmolagentsInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("framework-agents")
    weather = tool(get_weather)

    def agent(model: str, stream: bool) -> ToolCallingAgent:
        llm = OpenAIServerModel(
            model_id=model, api_base=base_url, api_key="sk-stub", client_kwargs={"max_retries": 0}
        )
        return ToolCallingAgent(
            tools=[weather], model=llm, max_steps=3, stream_outputs=stream, verbosity_level=0
        )

    with tracer.start_as_current_span("scenario agent"):
        agent("gpt-4o-mini", stream=False).run(QUESTION)
    with tracer.start_as_current_span("scenario stream"):
        agent("gpt-4o-mini", stream=True).run(QUESTION)
    with tracer.start_as_current_span("scenario error"):
        expect_failure(lambda: agent("boom", stream=False).run(QUESTION))
    provider.shutdown()


def run_pydantic_ai(base_url: str, endpoint: str, project: str) -> None:
    """pydantic-ai's own OTel instrumentation (``Agent.instrument_all``), no logfire."""
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = grpc_provider(endpoint, project, "agent-pydantic-ai")
    Agent.instrument_all(InstrumentationSettings(tracer_provider=provider))
    tracer = provider.get_tracer("framework-agents")
    client = OpenAIProvider(base_url=base_url, api_key="sk-stub")
    client.client.max_retries = 0

    def agent(model: str) -> Agent:
        return Agent(
            OpenAIChatModel(model, provider=client), instructions=SYSTEM, tools=[get_weather]
        )

    async def streamed() -> None:
        async with agent("gpt-4o-mini").run_stream(QUESTION) as result:
            async for _ in result.stream_text():
                pass

    with tracer.start_as_current_span("scenario agent"):
        agent("gpt-4o-mini").run_sync(QUESTION)
    with tracer.start_as_current_span("scenario stream"):
        asyncio.run(streamed())
    with tracer.start_as_current_span("scenario error"):
        expect_failure(lambda: agent("boom").run_sync(QUESTION))
    provider.shutdown()


def run_llamaindex(base_url: str, endpoint: str, project: str) -> None:
    """LlamaIndex's ``FunctionAgent`` on its ``OpenAI`` LLM, traced by OpenInference's
    LlamaIndex instrumentor. Runs from ``.venv-llamaindex`` (see pyproject's extras)."""
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai import OpenAI
    from openinference.instrumentation.llama_index import LlamaIndexInstrumentor

    from tests.stub_openai import FAIL_HEADER

    provider = grpc_provider(endpoint, project, "agent-llamaindex")
    LlamaIndexInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("framework-agents")
    weather = FunctionTool.from_defaults(get_weather)

    async def run(stream: bool, fail: bool = False) -> None:
        llm = OpenAI(
            model="gpt-4o-mini",  # it refuses unknown model names: the stub fails by header
            api_base=base_url,
            api_key="sk-stub",
            max_retries=0,
            default_headers={FAIL_HEADER: "1"} if fail else None,
            additional_kwargs={"stream_options": {"include_usage": True}} if stream else {},
        )
        agent = FunctionAgent(tools=[weather], llm=llm, system_prompt=SYSTEM, streaming=stream)
        handler = agent.run(QUESTION)
        async for _ in handler.stream_events():
            pass
        await handler

    with tracer.start_as_current_span("scenario agent"):
        asyncio.run(run(stream=False))
    with tracer.start_as_current_span("scenario stream"):
        asyncio.run(run(stream=True))
    with tracer.start_as_current_span("scenario error"):
        expect_failure(lambda: asyncio.run(run(stream=False, fail=True)))
    provider.shutdown()


def expect_failure(call: Callable[[], object]) -> None:
    try:
        call()
    except Exception as exc:  # the framework's own wrapper around the 500
        if "500" not in str(exc) and "stub internal error" not in str(exc):
            raise
    else:
        raise SystemExit("the stub's 500 did not raise")


def run_vercel_ai(base_url: str, endpoint: str, project: str) -> None:
    """The Vercel AI SDK runs under Node (tests/node, installed by ``.ci/run``), exporting
    OTLP/HTTP to an ``http://`` endpoint, else OTLP/gRPC."""
    node = Path(__file__).resolve().parent / "node"
    protocol = "http" if endpoint.startswith("http://") else "grpc"
    url = endpoint if protocol == "http" else f"http://{endpoint}"
    subprocess.run(
        ["node", "vercel_agent.mjs", base_url, url, project, protocol],
        cwd=node,
        check=True,
        timeout=120,
    )


FRAMEWORKS: dict[str, Callable[[str, str, str], None]] = {
    "strands": run_strands,
    "strands_latest": run_strands,
    "strands_http": run_strands,
    "langgraph": run_langgraph,
    "openai_agents": run_openai_agents,
    "vercel_ai": run_vercel_ai,
    "smolagents": run_smolagents,
    "pydantic_ai": run_pydantic_ai,
    "llamaindex": run_llamaindex,
}


def main(framework: str, base_url: str, endpoint: str, project: str) -> None:
    if framework == "strands_latest":
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    FRAMEWORKS[framework](base_url, endpoint, project)


if __name__ == "__main__":
    main(*sys.argv[1:5])
