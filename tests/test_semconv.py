"""The trackio convention: its registry cannot drift from the code, and rollouts land as
step metrics (raw OTLP spans over real gRPC, read back through Trackio)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from trackio.sqlite_storage import SQLiteStorage

from tests.conftest import only_run, traces_of
from trackio_otel import semconv

DOC = Path(__file__).resolve().parents[1] / "docs" / "semconv.md"


def constants() -> dict[str, Any]:
    return {k: v for k, v in vars(semconv).items() if re.fullmatch(r"[A-Z][A-Z0-9_]*", k)}


def names(value: Any) -> list[str]:
    return list(value) if isinstance(value, (tuple, dict)) else [value]


def test_every_constant_is_in_the_registry():
    doc = DOC.read_text()
    missing = [
        f"{const} = {name!r}"
        for const, value in constants().items()
        for name in names(value)
        if f"`{const}`" not in doc or f"`{name}`" not in doc
    ]
    assert not missing, f"add to docs/semconv.md: {missing}"


def test_no_two_constants_share_a_name():
    seen: dict[str, str] = {}
    clashes = []
    for const, value in constants().items():
        for name in names(value):
            if name in seen:
                clashes.append((seen[name], const, name))
            seen[name] = const
    assert not clashes


# --- Rollouts → step metrics ----------------------------------------------------------------
def _kv(key: str, value: Any) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = value
    return kv


def span(trace: int, span_id: int, parent: int | None, name: str, **attrs: Any) -> Span:
    start = 1_790_000_000_000_000_000 + trace * 10_000_000_000 + span_id * 1_000_000
    return Span(
        trace_id=trace.to_bytes(16, "big"),
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        name=name,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 500_000_000,
        attributes=[_kv(k, v) for k, v in attrs.items()],
    )


def request(project: str, *spans: Span) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv(semconv.PROJECT, project), _kv(semconv.RUN_NAME, "grpo")])
    rs.scope_spans.add().spans.extend(spans)
    return req


def rollout(trace: int, reward: float, **extra: Any) -> Span:
    attrs = {
        semconv.STEP: 7,
        semconv.ROLLOUT_GROUP_ID: "prompt-0",
        semconv.ROLLOUT_INDEX: trace,
        semconv.ROLLOUT_REWARD: reward,
        **extra,
    }
    return span(trace, 1, None, semconv.SPAN_ROLLOUT, **attrs)


def chat(trace: int) -> Span:
    return span(trace, 2, 1, "chat qwen", **{"gen_ai.operation.name": "chat"})


def rollout_rows(project: str) -> list[dict]:
    run = only_run(project)
    logs = SQLiteStorage.get_logs(project, run["name"], run_id=run["id"])
    return [r for r in logs if "rollout/count" in r]


def test_rollouts_land_as_one_statistics_row_per_step(endpoint, project):
    """Two rollouts of one group at step 7, the second one's root in a later request:
    one metrics row at step 7 sums both up (TRL's statistics), whatever came first."""
    first = request(
        project,
        rollout(1, 0.75, **{
            semconv.ROLLOUT_REWARD_PREFIX + "format": 1.0,
            semconv.ROLLOUT_REWARD_PREFIX + "correct": 0.5,
            semconv.ROLLOUT_REWARD_PREFIX + "note": "not a number",
            semconv.ROLLOUT_ADVANTAGE: 0.41,
        }),
        chat(1),
        chat(2),  # the second rollout's root comes later
        span(3, 1, None, "agent run", **{semconv.STEP: 7}),  # no reward: not a rollout
    )  # fmt: skip
    late = request(project, rollout(2, -0.25, **{semconv.ROLLOUT_ADVANTAGE: -0.6}))
    with grpc.insecure_channel(endpoint) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        for req in (first, late, first, late):  # a retried export changes nothing
            assert not stub.Export(req).HasField("partial_success")

    (row,) = rollout_rows(project)
    stats = {k: v for k, v in row.items() if k.startswith("rollout/")}
    spread = 0.7071067811865476  # the sample std of 0.75 and -0.25, as TRL's nanstd
    assert stats == pytest.approx({
        "rollout/count": 2,
        "rollout/reward": 0.25,
        "rollout/reward_std": spread,
        "rollout/reward_min": -0.25,
        "rollout/reward_max": 0.75,
        "rollout/rewards/format/mean": 1.0,
        "rollout/rewards/format/std": 0.0,
        "rollout/rewards/correct/mean": 0.5,
        "rollout/rewards/correct/std": 0.0,
        "rollout/advantage/mean": -0.095,
        "rollout/advantage/std": 0.7141778489984715,
        "rollout/advantage/min": -0.6,
        "rollout/advantage/max": 0.41,
        "rollout/group_reward_std": spread,
        "rollout/frac_reward_zero_std": 0.0,
    })  # fmt: skip
    assert row["step"] == 7
    rolled = [t for t in traces_of(project) if t["metadata"].get("rollout.reward") is not None]
    assert sorted(t["metadata"]["rollout.reward"] for t in rolled) == [-0.25, 0.75]
    assert sorted(t["metadata"]["rollout.group_id"] for t in rolled) == ["prompt-0"] * 2


def test_rollout_without_step_uses_its_trace_step(endpoint, project):
    with grpc.insecure_channel(endpoint) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        stub.Export(request(project, span(5, 1, None, "warmup")))
        stub.Export(request(project, span(6, 1, None, "rollout", **{semconv.ROLLOUT_REWARD: 1})))
    (row,) = rollout_rows(project)
    trace = next(t for t in traces_of(project) if t["metadata"].get("rollout.reward") == 1)
    assert row["step"] == trace["step"] == 1
    assert (row["rollout/reward"], row["rollout/count"]) == (1, 1)
