"""Shared fixtures: a real collector on an ephemeral loopback port, real OTel SDK exporters,
and Trackio's own reader.

Trackio reads ``TRACKIO_DIR`` once, at import, so the whole session shares one directory;
each test writes to its own project (``project`` fixture) to stay independent.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

SESSION_DIR = Path(tempfile.mkdtemp(prefix="trackio-otel-tests-"))
os.environ["TRACKIO_DIR"] = str(SESSION_DIR)
os.environ.setdefault("BROWSER", "true")
os.environ.setdefault("TRACKIO_TRACE_SESSIONS_DIR", str(SESSION_DIR / "sessions"))

from google.protobuf.json_format import ParseDict  # noqa: E402
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: E402
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)
from trackio.sqlite_storage import SQLiteStorage  # noqa: E402

from trackio_otel.collector import Collector, CollectorConfig  # noqa: E402

AGENT_ROLES = ["system", "user", "assistant", "tool", "assistant"]
"""The chat of the recorded weather agent: question, tool call, tool result, answer."""
FIXTURES = (
    Path(__file__).resolve().parent / "fixtures" / "otlp"
)  # recorded by real instrumentations


@pytest.fixture(scope="session")
def trackio_dir() -> Path:
    return SESSION_DIR


@pytest.fixture
def project() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def local_config(trackio_dir: Path, **settings: Any) -> CollectorConfig:
    """A test collector's config: gRPC and HTTP on ephemeral loopback ports, no stats lines;
    ``settings`` override or add to that."""
    defaults = {"endpoint": "127.0.0.1:0", "http_endpoint": "127.0.0.1:0", "stats_interval_s": 3600}
    return CollectorConfig(trackio_dir=trackio_dir, **{**defaults, **settings})


@pytest.fixture
def collector(trackio_dir: Path) -> Iterator[Collector]:
    with Collector(local_config(trackio_dir)) as c:
        yield c


@pytest.fixture
def endpoint(collector: Collector) -> str:
    return f"127.0.0.1:{collector.port}"


def load_fixture(
    name: str, project: str
) -> tuple[ExportTraceServiceRequest, ExportLogsServiceRequest]:
    """A recorded payload, re-targeted at ``project`` via the resource's ``trackio.project``."""
    raw = json.loads((FIXTURES / f"{name}.otlp.json").read_text())
    traces = ParseDict(raw["traces"], ExportTraceServiceRequest())
    logs = ParseDict(raw.get("logs", {}), ExportLogsServiceRequest())
    for rs in [*traces.resource_spans, *logs.resource_logs]:
        kv = rs.resource.attributes.add()
        kv.key, kv.value.string_value = "trackio.project", project
    return traces, logs


def free_port() -> int:
    """A loopback port nobody listens on (for subprocesses that must bind it themselves)."""
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def runs(project: str) -> list[dict]:
    return SQLiteStorage.get_run_records(project)


def only_run(project: str) -> dict:
    records = runs(project)
    assert len(records) == 1, records
    return records[0]


def traces_of(project: str, run: dict | None = None) -> list[dict]:
    run = run or only_run(project)
    return SQLiteStorage.get_traces(project, run["name"], run_id=run["id"], sort="step_asc")
