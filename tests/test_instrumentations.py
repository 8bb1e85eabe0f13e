"""The real instrumentation packages, each in its own process, driving the real ``openai``
client against a stand-in server; their OTLP reaches the collector and is read back through
Trackio. One family per process: they patch the same client and conflict in one.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import AGENT_ROLES, traces_of
from tests.instrumented_agent import PNG_B64
from tests.stub_openai import CALL_ID, FINAL_ANSWER, IMAGE_ANSWER, MODEL, serve

ROOT = Path(__file__).resolve().parent.parent
# Each runs in its own subprocess (tests/instrumented_agent.py): they patch the same client.
# A missing package (see the `test` extra) fails the test; it is never skipped.
FAMILIES = ("openinference", "openllmetry", "openai_v2")


@pytest.fixture(params=FAMILIES)
def family_traces(request, endpoint, project) -> tuple[str, dict[str, dict]]:
    family = request.param
    with serve() as base_url:
        done = subprocess.run(
            [sys.executable, "-m", "tests.instrumented_agent", family, base_url, endpoint, project],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    return family, {t["key"]: t for t in traces_of(project)}


def generations(trace: dict) -> list[dict]:
    return [s for s in trace["spans"] if s["kind"] == "generation"]


def test_two_turn_tool_agent(family_traces):
    family, traces = family_traces
    agent = traces["scenario agent"]
    assert [m["role"] for m in agent["messages"]] == AGENT_ROLES
    call = agent["messages"][2]["tool_calls"][0]
    assert call["id"] == CALL_ID
    assert call["function"]["name"] == "get_weather"
    assert agent["messages"][3]["tool_call_id"] == CALL_ID
    assert agent["messages"][-1]["content"] == FINAL_ANSWER
    (tool,) = [s for s in agent["spans"] if s["kind"] == "tool"]
    assert tool["id"] == CALL_ID
    gens = generations(agent)
    assert [g["model"] for g in gens] == [MODEL, MODEL]
    assert [g["usage"]["total_tokens"] for g in gens] == [58, 70]
    assert agent["metadata"]["total_tokens"] == 128
    assert agent["metadata"]["service_name"] == f"agent-{family}"


def test_streamed_call(family_traces):
    _, traces = family_traces
    stream = traces["scenario stream"]
    (gen,) = generations(stream)
    assert stream["messages"][-1]["role"] == "assistant"
    assert stream["messages"][-1]["content"] == FINAL_ANSWER
    assert gen["model"] == MODEL


def test_failed_call(family_traces):
    _, traces = family_traces
    failed = traces["scenario error"]
    (gen,) = generations(failed)
    assert gen["status"] == "error"
    assert "500" in gen["error"] or "InternalServerError" in gen["error"]
    assert failed["metadata"]["status"] == "error"


def test_image_input(family_traces, project, trackio_dir):
    family, traces = family_traces
    image_trace = traces["scenario image"]
    user, answer = image_trace["messages"]
    assert answer == {"role": "assistant", "content": IMAGE_ANSWER}
    if family == "openai_v2":
        # openai-v2 2.4b0 with util-genai 1.1b0 records only text parts, and only from
        # string content: a list-content user message arrives with ``parts: []``.
        assert user == {"role": "user", "content": None}
        return
    text, image = user["content"]
    assert text == {"type": "text", "text": "What is in this image?"}
    assert image["_type"] == "trackio.image"
    run, step = image_trace["run"], image_trace["step"]
    assert image["file_path"].startswith(f"{project}/{run}/{step}/")
    assert (trackio_dir / "media" / image["file_path"]).read_bytes() == base64.b64decode(PNG_B64)
