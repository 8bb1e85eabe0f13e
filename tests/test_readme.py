"""The README's first two lines, as typed, one after the other in one directory.

CI (``.ci/run``) runs the second line. This runs the first, in a copy of the checkout: it
must build the venv, return (the collector in the background, not blocking line 2), and
leave a collector that listens on 127.0.0.1:4317 (gRPC) and :4318 (HTTP) and commits what
it is sent.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ROOT = Path(__file__).resolve().parent.parent


def readme_lines() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "the README starts with a bash block"
    return block.group(1).strip().splitlines()


def test_ci_runs_the_second_line():
    assert readme_lines()[1] in (ROOT / ".ci" / "run").read_text().splitlines()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_first_line_builds_the_venv_and_leaves_a_collector_listening(tmp_path):
    if _listening(4317) or _listening(4318):
        pytest.skip("127.0.0.1:4317/4318 is taken on this machine; line 1 binds them as written")
    repo = tmp_path / "trackio-otel"
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    trackio_dir = tmp_path / "trackio"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "VIRTUAL_ENV"))}
    env["TRACKIO_DIR"] = str(trackio_dir)
    line = readme_lines()[0]
    output = tmp_path / "line1.out"
    with output.open("w") as out:  # a file, not a pipe: the collector keeps it open
        done = subprocess.run(  # returns: the collector stays in the background
            ["bash", "-c", f"{line}\necho $! > collector.pid"],
            cwd=repo,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=900,
            check=False,
        )
    assert done.returncode == 0, output.read_text()[-3000:]
    pid = int((repo / "collector.pid").read_text())
    try:
        for _ in range(900):  # imports, writer processes: slow on a busy machine
            if _listening(4317) and _listening(4318):
                break
            time.sleep(0.2)
        log = (repo / "collector.log").read_text()
        alive = subprocess.run(["ps", "-p", str(pid)], capture_output=True).returncode == 0
        assert alive, f"the collector exited: {log}"
        assert "listening on 127.0.0.1:4317 (OTLP/gRPC) and http://127.0.0.1:4318" in log, log

        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"trackio.project": "readme"}))
        provider.add_span_processor(SimpleSpanProcessor(memory))
        with provider.get_tracer("readme").start_as_current_span("hello"):
            pass
        exporter = OTLPSpanExporter(endpoint="127.0.0.1:4317", insecure=True)
        assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
        with sqlite3.connect(trackio_dir / "readme.db") as db:
            assert db.execute("SELECT name FROM otel_spans").fetchall() == [("hello",)]
    finally:
        os.kill(pid, signal.SIGTERM)
        for _ in range(150):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
