"""Agent frameworks, each run for real in its own process (tests/framework_agents.py) with
its usual OTel setup, against the stand-in model server, exporting over OTLP/gRPC to the
collector; judged by what Trackio's own reader returns. Pinned in the ``frameworks`` extra;
a missing package fails the test, it is never skipped.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import traces_of
from tests.framework_agents import QUESTION, SYSTEM
from tests.stub_openai import CALL_ID, FINAL_ANSWER, serve
from trackio_otel.translate.conventions import smolagents

ROOT = Path(__file__).resolve().parent.parent
OWN_ENVIRONMENT = {"llamaindex": (ROOT / ".venv-llamaindex", "llamaindex")}
"""Frameworks whose pins conflict with the test extra's: each in a venv of its own extra,
built on first use (pip's cache makes later builds quick)."""


def python_for(framework: str) -> Path:
    if framework not in OWN_ENVIRONMENT:
        return Path(sys.executable)
    venv, extra = OWN_ENVIRONMENT[framework]
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[{extra}]"],
            check=True,
            timeout=900,
        )
    return python


def run_framework(framework: str, endpoint: str, project: str) -> dict[str, dict]:
    python = python_for(framework)
    with serve() as base_url:
        done = subprocess.run(
            [
                str(python),
                "-m",
                "tests.framework_agents",
                framework,
                base_url,
                endpoint,
                project,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr[-4000:]
    return {t["key"]: t for t in traces_of(project)}


def spans_of(trace: dict, kind: str) -> list[dict]:
    return [s for s in trace["spans"] if s["kind"] == kind]


def assert_tool_agent(
    trace: dict, *, system: str | None = SYSTEM, model: str = "gpt-4o-mini"
) -> None:
    """(System →) question → assistant tool call → tool result paired by id → final
    answer; one generation per model call, each with its model and its own usage; the
    tool span's id is the call id, so Trackio pairs it with the tool message. ``system``
    None: the framework's own system prompt, whatever it says."""
    chat = trace["messages"]
    roles = [m["role"] for m in chat]
    assert roles == ["system", "user", "assistant", "tool", "assistant"], chat
    if system is not None:
        assert chat[0]["content"] == SYSTEM
    assert QUESTION in chat[-4]["content"]
    (call,) = chat[-3]["tool_calls"]
    assert call["id"] == CALL_ID
    assert call["function"]["name"] == "get_weather"
    assert chat[-2]["tool_call_id"] == CALL_ID
    assert "rainy" in chat[-2]["content"]
    assert chat[-1]["content"] == FINAL_ANSWER
    assert spans_of(trace, "tool")[0]["id"] == CALL_ID
    gens = spans_of(trace, "generation")
    assert len(gens) == 2
    assert all(g["model"].startswith(model) for g in gens), gens  # request or response model
    assert [g["usage"]["total_tokens"] for g in gens] == [58, 70]
    assert trace["metadata"]["total_tokens"] == 128


def assert_failed_call(
    trace: dict, *, model: str | None = "boom", question: bool | None = None
) -> None:
    """The 500 is an error on the one generation, with the request's model and messages
    (``model=None``: the framework records no model for a failed call; unless ``question``
    says otherwise, no messages either)."""
    (gen,) = spans_of(trace, "generation")
    assert gen["status"] == "error"
    assert "stub internal error" in gen["error"]
    assert gen.get("model") == model
    assert trace["metadata"]["status"] == "error"
    questions = [m["content"] for m in trace["messages"] if m["role"] == "user"]
    assert len(questions) == (1 if question or (question is None and model) else 0)
    assert all(QUESTION in q for q in questions)
    assert all(m["role"] != "assistant" for m in trace["messages"])  # nothing invented


def http_url(collector) -> str:
    return f"http://127.0.0.1:{collector.http_port}"


@pytest.mark.parametrize("framework", ["strands", "strands_latest", "strands_http"])
def test_strands(framework, collector, endpoint, project):
    """Strands 1.62 writes content as span events: per-message events with Bedrock content
    blocks by default, ``gen_ai.client.inference.operation.details`` events when opted in
    to the latest GenAI conventions. Its own exporter setup is OTLP/HTTP."""
    target = http_url(collector) if framework == "strands_http" else endpoint
    traces = run_framework(framework, target, project)
    assert_tool_agent(traces["scenario agent"])
    assert_tool_agent(traces["scenario stream"])
    assert_failed_call(traces["scenario error"])
    (tool,) = spans_of(traces["scenario agent"], "tool")
    assert tool["input"] == {"location": "Paris"}
    assert "rainy" in str(tool["output"])


def test_langgraph(endpoint, project):
    """LangGraph 1.2's ``create_react_agent`` under openinference-instrumentation-langchain
    0.1.80: the tool span has no call id of its own (only its ``ToolMessage`` output names
    it), and the failed call records an assistant role with no content."""
    traces = run_framework("langgraph", endpoint, project)
    assert_tool_agent(traces["scenario agent"])
    assert_tool_agent(traces["scenario stream"])
    assert_failed_call(traces["scenario error"])


def test_openai_agents(endpoint, project):
    """openai-agents 0.24 under openinference-instrumentation-openai-agents 2.6: the TOOL span
    carries no call id (paired by tool name and arguments); a streamed chat-completions
    call's answer is only in ``output.value``, as Responses objects. A failed call's span
    holds no input and no model (the SDK sets both only on success), so there are none."""
    traces = run_framework("openai_agents", endpoint, project)
    assert_tool_agent(traces["scenario agent"])
    assert_tool_agent(traces["scenario stream"])
    assert_failed_call(traces["scenario error"], model=None)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_vercel_ai(protocol, collector, endpoint, project):
    """The Vercel AI SDK 6.0 (``ai`` + ``@ai-sdk/openai``, under Node, Node OTel SDK over
    gRPC): its ``ai.*`` convention — model calls are ``….doGenerate`` / ``….doStream``
    spans with no ``gen_ai.operation.name``, tools are ``ai.toolCall`` spans, content is
    ``ai.prompt.messages`` / ``ai.response.*``."""
    target = http_url(collector) if protocol == "http" else endpoint
    traces = run_framework("vercel_ai", target, project)
    assert_tool_agent(traces["scenario agent"])
    assert_tool_agent(traces["scenario stream"])
    assert_failed_call(traces["scenario error"])
    (tool,) = spans_of(traces["scenario agent"], "tool")
    assert (tool["input"], tool["output"]["conditions"]) == ({"location": "Paris"}, "rainy")


def test_smolagents(endpoint, project):
    """smolagents 1.26 ``ToolCallingAgent`` under openinference-instrumentation-smolagents
    0.1.43: its ``tool-call`` / ``tool-response`` memory roles become OpenAI's, its
    ``final_answer`` call is the answer, tool spans take ``tool.name`` (not the class
    name). The failed call's span records no model (smolagents sets it on success)."""
    traces = run_framework("smolagents", endpoint, project)
    for name in ("scenario agent", "scenario stream"):
        assert_tool_agent(traces[name], system=None)
        tools = spans_of(traces[name], "tool")
        assert [t["name"] for t in tools] == ["get_weather", "final_answer"]
        assert tools[0]["input"] == {"location": "Paris"}
    assert_failed_call(traces["scenario error"], model=None, question=True)


def test_smolagents_replayed_calls_are_parsed_as_literals_only():
    """The ``Calling tools`` repr is read with ``ast.literal_eval``: code stays text."""
    evil = {"role": "tool-call", "content": "Calling tools:\n[__import__('os').getcwd()]"}
    assert smolagents.history([evil]) == [{**evil, "role": "assistant"}]
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}
    replay = f"Calling tools:\n{[call]}"  # what smolagents' memory writes
    (call,) = smolagents.history([{"role": "tool-call", "content": replay}])[0]["tool_calls"]
    assert (call["id"], call["function"]["arguments"]) == ("c1", '{"x": 1}')


def test_pydantic_ai(endpoint, project):
    """pydantic-ai-slim 2.68's own instrumentation (OTel GenAI) stays right; its failed
    call's span holds no messages, but the agent span's ``pydantic_ai.all_messages`` does."""
    traces = run_framework("pydantic_ai", endpoint, project)
    assert_tool_agent(traces["scenario agent"])
    assert_tool_agent(traces["scenario stream"])
    assert_failed_call(traces["scenario error"])


def test_llamaindex(endpoint, project):
    """LlamaIndex 0.14 ``FunctionAgent`` under openinference-instrumentation-llama-index 4.6
    (from its own ``.venv-llamaindex``): OpenInference marks ``OpenAI._prepare_chat_with_tools`` as
    LLM too, beside each real call; it is not a second generation."""
    traces = run_framework("llamaindex", endpoint, project)
    assert_tool_agent(traces["scenario agent"])
    assert_tool_agent(traces["scenario stream"])
    assert_failed_call(traces["scenario error"], model="gpt-4o-mini")
    helpers = [s for s in traces["scenario agent"]["spans"] if "_prepare_chat" in s["name"]]
    assert [s["kind"] for s in helpers] == ["span", "span"]
