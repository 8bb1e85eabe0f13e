"""The SDK end to end: in process (embedded) and over OTLP/gRPC to a real collector, read
back through Trackio's own reader."""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from decimal import Decimal

import pytest
import trackio
from trackio.sqlite_storage import SQLiteStorage

import trackio_otel
from tests.conftest import only_run, runs, traces_of
from tests.training import train

CALL = {
    "id": "call_add_1",
    "type": "function",
    "function": {"name": "add", "arguments": json.dumps({"a": 2, "b": 2})},
}


@pytest.fixture(params=["embedded", "otlp"])
def destination(request) -> dict:
    if request.param == "embedded":
        return {}
    return {"endpoint": request.getfixturevalue("endpoint"), "embedded": False}


def scalar_rows(project: str, run: dict) -> list[dict]:
    rows = SQLiteStorage.get_logs(project, run["name"], run_id=run["id"])
    return [r for r in rows if set(r) - {"timestamp", "step"}]


def test_run_steps_and_rollout_land_in_trackio(destination, project):
    config = {"lr": 0.001, "model": "tiny"}
    with trackio_otel.init(
        project=project, name="sdk-run", config=config, group="g", gpu=False, **destination
    ) as run:
        run.log({"train/loss": 1.0})  # step 0
        run.log({"train/loss": 0.5})  # step 1
        with run.step() as s:  # step 2
            with s.phase("forward"):
                time.sleep(0.002)
            with s.phase("backward"):
                time.sleep(0.002)
            s.log({"train/loss": 0.25})
        with run.rollout(group="q1", index=3, environment="calc", policy_version=7) as r:
            r.message("user", "What is 2+2?")
            r.generation(
                model="m-1",
                output={"role": "assistant", "content": None, "tool_calls": [CALL]},
                usage={"input_tokens": 11, "output_tokens": 4},
                finish_reason="tool_calls",
                cost_usd=0.001,
            )
            r.tool_call("add", {"a": 2, "b": 2}, result=4)  # answers CALL by name
            r.generation(model="m-1", output="4", usage={"input_tokens": 20, "output_tokens": 1})
            r.reward(1.0, correct=1.0, format=0.5)
            r.advantage(0.75)

    record = only_run(project)
    assert (record["name"], record["id"]) == ("sdk-run", run.id)
    assert SQLiteStorage.get_run_config(project, "sdk-run", run_id=run.id)["lr"] == 0.001

    rows = scalar_rows(project, record)
    loss = {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}
    assert loss == {0: 1.0, 1: 0.5, 2: 0.25}
    step_row = next(r for r in rows if "train/step_time_ms" in r)
    assert step_row["step"] == 2
    assert step_row["train/phase/forward_ms"] > 0 and step_row["train/phase/backward_ms"] > 0
    assert step_row["train/step_time_ms"] >= step_row["train/phase/forward_ms"]

    traces = {t["key"]: t for t in traces_of(project, record)}
    rollout = traces["rollout/calc"]
    assert rollout["step"] == 3  # the step the next log would take
    assert [m["role"] for m in rollout["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert rollout["messages"][1]["tool_calls"][0]["id"] == "call_add_1"
    assert rollout["messages"][2] == {"role": "tool", "tool_call_id": "call_add_1", "content": "4"}
    assert rollout["messages"][3]["content"] == "4"
    tool = next(s for s in rollout["spans"] if s["kind"] == "tool")
    assert tool["id"] == "call_add_1" and tool["input"] == {"a": 2, "b": 2}
    assert tool["output"] == "4"
    assert [s["kind"] for s in rollout["spans"]].count("generation") == 2
    meta = rollout["metadata"]
    assert meta["rollout.reward"] == 1.0 and meta["rollout.reward.format"] == 0.5
    assert meta["rollout.advantage"] == 0.75 and meta["rollout.group_id"] == "q1"
    assert meta["rollout.index"] == 3 and meta["input_tokens"] == 31
    assert meta["cost_usd"] == pytest.approx(0.001)

    # A training step is step metrics, not a Traces-page entry; its span tree stays for SQL.
    assert "trackio.train.step" not in traces
    with sqlite3.connect(SQLiteStorage.get_project_db_path(project)) as db:
        tree = dict(db.execute("SELECT name, span_id FROM otel_spans WHERE parent_span_id IS NULL"))
        phases = dict(
            db.execute(
                "SELECT name, parent_span_id FROM otel_spans WHERE name IN ('forward', 'backward')"
            )
        )
    assert phases == {"forward": tree["trackio.train.step"], "backward": tree["trackio.train.step"]}


def test_two_runs_in_one_process_keep_their_own_data(destination, project):
    """Runs in one process share its OTel providers, so each run's exporters see the other
    run's spans and log records too; each must keep only its own."""
    first = trackio_otel.init(project=project, name="first", gpu=False, **destination)
    second = trackio_otel.init(project=project, name="second", gpu=False, **destination)
    for run, loss in ((first, 1.0), (second, 2.0)):
        run.log({"train/loss": loss})
        with run.rollout(group=run.name) as r:
            r.message("user", f"from {run.name}")
    first.finish()
    second.finish()

    by_name = {r["name"]: r for r in runs(project)}
    assert set(by_name) == {"first", "second"}
    for name, loss in (("first", 1.0), ("second", 2.0)):
        run = by_name[name]
        assert [r["train/loss"] for r in scalar_rows(project, run)] == [loss]
        (trace,) = traces_of(project, run)
        assert [m["content"] for m in trace["messages"]] == [f"from {name}"]


def test_embedded_and_endpoint_together(endpoint, project, tmp_path):
    with trackio_otel.init(
        project=project, endpoint=endpoint, embedded=True, trackio_dir=tmp_path, gpu=False
    ) as run:
        with run.rollout(step=1) as r:
            r.generation(model="m", input=[{"role": "user", "content": "hi"}], output="hello")
        run.log({"x": 1.0}, step=1)
    (trace,) = traces_of(project)  # through the collector
    assert [m["content"] for m in trace["messages"]] == ["hi", "hello"]
    with sqlite3.connect(tmp_path / f"{project}.db") as conn:  # and in process
        assert conn.execute("SELECT count(*) FROM otel_spans").fetchone() == (2,)
        (row,) = conn.execute("SELECT step, metrics FROM metrics WHERE metrics LIKE '%\"x\"%'")
    assert row[0] == 1 and json.loads(row[1]) == {"x": 1.0}


def test_tool_error_marks_the_span_and_user_errors_propagate(project):
    run = trackio_otel.init(project=project, gpu=False)
    with pytest.raises(KeyError), run.rollout(step=4) as r:
        r.message("user", "look it up")
        r.tool_call("lookup", {"k": "x"}, call_id="c1", error=LookupError("no such key"))
        raise KeyError("user code fails")
    run.finish()
    (trace,) = traces_of(project)
    tool = next(s for s in trace["spans"] if s["kind"] == "tool")
    assert tool["status"] == "error" and "no such key" in tool["error"]
    assert trace["metadata"]["status"] == "error" and trace["step"] == 4
    assert [m["role"] for m in trace["messages"]] == ["user", "tool"]  # rollout-level chat


def test_log_trace_reproduces_a_trackio_trace(project):
    t = trackio.Trace(
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [dict(CALL, id="tc-9")]},
            {"role": "tool", "tool_call_id": "tc-9", "content": "rainy"},
            {"role": "assistant", "content": "It is rainy."},
        ],
        metadata={"rollout.reward": 0.5, "session_id": "s-1", "env": "weather"},
        spans=[
            {"id": "a", "name": "agent", "kind": "span", "start_time": 1.0, "end_time": 3.0},
            {
                "id": "g",
                "name": "llm",
                "kind": "generation",
                "parent_id": "a",
                "model": "m",
                "usage": {"input_tokens": 3, "output_tokens": 2},
                "start_time": 1.0,
                "duration_ms": 500,
            },
            {
                "id": "tc-9",
                "name": "get_weather",
                "kind": "tool",
                "parent_id": "a",
                "input": {"city": "Paris"},
                "output": "rainy",
                "start_time": 1.6,
                "end_time": 1.7,
            },
        ],
    )
    plain = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    }
    with trackio_otel.init(project=project, gpu=False) as run:
        run.log_trace(t, step=5, key="weather")
        run.log_trace(plain, step=6)
    got, bare = traces_of(project)
    assert (bare["key"], bare["step"], bare["messages"]) == ("trace", 6, plain["messages"])
    assert (got["key"], got["step"]) == ("weather", 5)
    assert [m["role"] for m in got["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert got["messages"][2]["tool_call_id"] == "tc-9"
    spans = {s["name"]: s for s in got["spans"]}
    assert spans["get_weather"]["id"] == "tc-9" and spans["get_weather"]["kind"] == "tool"
    assert spans["llm"]["parent_id"] == spans["agent"]["id"]
    assert spans["llm"]["usage"]["input_tokens"] == 3 and spans["llm"]["duration_ms"] == 500
    assert got["metadata"]["rollout.reward"] == 0.5 and got["metadata"]["session_id"] == "s-1"


def test_dead_endpoint_costs_only_the_data(project):
    """Nothing listens at the endpoint: the loop runs, nothing raises, ``finish`` gives up
    at its timeout, and nothing lands (``bench/bench_sdk.py`` measures the loop's cost
    beside the embedded default's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    run = trackio_otel.init(
        project=project, endpoint=f"127.0.0.1:{port}", embedded=False, gpu=False
    )
    train(run, 200)
    run.finish(timeout_s=1.0)
    assert SQLiteStorage.get_run_records(project) == []


def test_a_failure_inside_the_sdk_never_reaches_the_caller(project, caplog):
    class ZeroDim:  # numpy scalars and 0-d tensors log through .item()
        def item(self) -> float:
            return 2.5

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    with trackio_otel.init(project=project, gpu=False) as run:
        with run.rollout(group=Unprintable()) as r:  # the rollout can't be built: a no-op one
            r.generation(model="m", output="fine")
            r.reward(float("nan"))
        run.log({"ok": 1.0, "skipped": [1, 2], "tensor": ZeroDim()}, step=0)
    assert "Run.rollout failed" in caplog.text
    rows = scalar_rows(project, only_run(project))
    assert rows == [{"ok": 1.0, "tensor": 2.5, "timestamp": rows[0]["timestamp"], "step": 0}]
    assert traces_of(project) == []


def test_a_non_json_value_keeps_the_generation(project):
    """One value json cannot encode (a Decimal, a set) is written as text; the generation,
    its usage and the rest of the chat still land."""
    with trackio_otel.init(project=project, gpu=False) as run, run.rollout(step=1) as r:
        r.message("user", "price?")
        r.generation(
            model="m", output=[Decimal("1.50"), {"unit": "EUR"}], usage={"output_tokens": 4}
        )
    (trace,) = traces_of(project)
    (gen,) = [s for s in trace["spans"] if s["kind"] == "generation"]
    assert gen["usage"]["output_tokens"] == 4
    assert "1.50" in trace["messages"][-1]["content"]


def test_log_trace_and_rollout_share_one_vocabulary(project):
    """OpenAI's usage names (prompt_tokens / completion_tokens) count in both; they used to
    be read by run.rollout only."""
    usage = {"prompt_tokens": 9, "completion_tokens": 2}
    with trackio_otel.init(project=project, gpu=False) as run:
        run.log_trace(
            {
                "spans": [
                    {"id": "g", "name": "llm", "kind": "generation", "model": "m", "usage": usage}
                ]
            },
            step=1,
        )
        with run.rollout(step=2) as r:
            r.generation(model="m", output="ok", usage=usage)
    for trace in traces_of(project):
        (gen,) = [s for s in trace["spans"] if s["kind"] == "generation"]
        assert (gen["usage"]["input_tokens"], gen["usage"]["output_tokens"]) == (9, 2), trace


def test_log_trace_orders_a_deep_reversed_tree(project):
    """2,000 spans, each the parent of the one listed before it: parents are found by id
    (this took O(n³) and ran for hours); a cycle and an unknown parent hang off the root."""
    chain = [
        {
            "id": f"s{i}",
            "name": f"s{i}",
            "kind": "span",
            "parent_id": f"s{i + 1}" if i < 1999 else None,
        }
        for i in range(2000)
    ]
    loop = [
        {"id": "x", "name": "x", "kind": "span", "parent_id": "y"},
        {"id": "y", "name": "y", "kind": "span", "parent_id": "x"},
        {"id": "o", "name": "o", "kind": "span", "parent_id": "nowhere"},
    ]
    with trackio_otel.init(project=project, gpu=False) as run:
        run.log_trace({"spans": chain + loop}, step=1, key="deep")
    (trace,) = traces_of(project)
    spans = {s["name"]: s for s in trace["spans"]}
    assert len(spans) == 2004
    for i in range(1999):
        assert spans[f"s{i}"]["parent_id"] == spans[f"s{i + 1}"]["id"]
    root = spans["deep"]["id"]
    assert spans["s1999"]["parent_id"] == root and spans["o"]["parent_id"] == root
    assert root in (spans["x"]["parent_id"], spans["y"]["parent_id"])
