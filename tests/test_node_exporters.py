"""A non-Python client: the Node OTel SDK's OTLP/HTTP exporters (protobuf and JSON, pinned in
tests/node/package.json, installed by .ci/run) sending gen_ai spans to the collector."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import only_run, traces_of

NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.mark.parametrize("protocol", ["proto", "json"])
def test_node_http_exporters_land_a_genai_agent_trace(collector, project, protocol):
    assert shutil.which("node"), "Node.js is required (the CI machines have it)"
    assert (NODE_DIR / "node_modules").is_dir(), "run `npm ci` in tests/node (.ci/run does)"
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.http_port}"}
    done = subprocess.run(
        ["node", "send_genai.mjs", protocol, project],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    run = only_run(project)
    assert run["name"] == f"node-{protocol}"
    [agent] = traces_of(project, run)
    assert agent["key"] == "invoke_agent WeatherBot"
    assert [m["role"] for m in agent["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert agent["messages"][1]["tool_calls"][0]["id"] == "call_1"
    assert agent["messages"][-1]["content"] == "It is rainy in Paris."
    kinds = sorted(s["kind"] for s in agent["spans"])
    assert kinds == ["generation", "generation", "span", "tool"]
    assert agent["metadata"]["input_tokens"] == 42 and agent["metadata"]["output_tokens"] == 15
