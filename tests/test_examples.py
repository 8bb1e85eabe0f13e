"""Every example runs on CPU with no network and lands in Trackio (read back here)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from trackio.sqlite_storage import SQLiteStorage

from tests.conftest import AGENT_ROLES, only_run, traces_of

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run_example(args: list[str], trackio_dir: Path, **env: str) -> str:
    environ = {**os.environ, "TRACKIO_DIR": str(trackio_dir), **env}
    environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    done = subprocess.run(
        args, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def scalars(project: str) -> list[dict]:
    run = only_run(project)
    rows = SQLiteStorage.get_logs(project, run["name"], run_id=run["id"])
    return [r for r in rows if set(r) - {"timestamp", "step"}]


def test_agent_loop(trackio_dir, project):
    run_example([sys.executable, "examples/agent_loop.py", "--project", project], trackio_dir)
    traces = traces_of(project)
    assert [t["step"] for t in traces] == [0, 1, 2]
    for t in traces:
        roles = [m["role"] for m in t["messages"]]
        assert roles == AGENT_ROLES
        call_id = t["messages"][2]["tool_calls"][0]["id"]
        assert t["messages"][3]["tool_call_id"] == call_id
        tool = next(s for s in t["spans"] if s["kind"] == "tool")
        assert tool["id"] == call_id
        assert t["metadata"]["rollout.reward"] == 1.0
        assert t["metadata"]["input_tokens"] > 0


def test_grpo_loop(trackio_dir, project):
    run_example(
        [sys.executable, "examples/grpo_loop.py", "--project", project, "--steps", "3"],
        trackio_dir,
    )
    rollouts = [t for t in traces_of(project) if t["key"] == "rollout/arith"]
    assert len(rollouts) == 3 * 2 * 4
    by_group: dict[str, list[dict]] = {}
    for t in rollouts:
        by_group.setdefault(t["metadata"]["rollout.group_id"], []).append(t)
        assert t["step"] == int(t["metadata"]["rollout.group_id"].split("-")[0])
    assert sorted(len(g) for g in by_group.values()) == [4] * 6
    for group in by_group.values():  # group-normalised advantages sum to zero
        assert abs(sum(t["metadata"]["rollout.advantage"] for t in group)) < 1e-9
    means = {
        r["step"]: r["train/reward_mean"] for r in scalars(project) if "train/reward_mean" in r
    }
    assert sorted(means) == [0, 1, 2]


def test_torch_training(trackio_dir, project):
    out = run_example(
        [sys.executable, "examples/torch_training.py", "--project", project, "--steps", "6"],
        trackio_dir,
    )
    assert "trained 6 steps" in out
    rows = [r for r in scalars(project) if "train/step_time_ms" in r]
    assert [r["step"] for r in rows] == list(range(6))
    for phase in ("data_wait", "forward", "backward", "optimizer"):
        assert all(r[f"train/phase/{phase}_ms"] >= 0 for r in rows)
    assert not traces_of(project)  # steps are metrics; their span trees stay for SQL:
    with sqlite3.connect(SQLiteStorage.get_project_db_path(project)) as db:
        per_step = db.execute(
            "SELECT count(*) FROM otel_spans GROUP BY trace_id"
            " HAVING max(name = 'trackio.train.step')"
        ).fetchall()
    assert per_step == [(5,)] * 6


def test_torch_training_defaults_fill_the_system_tab(trackio_dir, project):
    """20 steps in ~2 s, well inside one 10 s metric interval: only the flush at finish
    (sampling still on) puts the process metrics on the System tab."""
    run_example([sys.executable, "examples/torch_training.py", "--project", project], trackio_dir)
    run = only_run(project)
    system = SQLiteStorage.get_system_logs(project, run["name"], run_id=run["id"])
    assert system, "no System-tab rows"
    keys = set().union(*system)
    assert {"process/cpu_utilization", "process/memory_rss"} <= keys, keys


def test_trl_grpo(trackio_dir, project):
    out = run_example(
        [sys.executable, "examples/trl_grpo.py", "--project", project, "--steps", "2"],
        trackio_dir,
    )
    assert "2 steps logged" in out
    rollouts = traces_of(project)
    assert sorted(t["step"] for t in rollouts) == [1] * 4 + [2] * 4  # 1 prompt x 4 a step
    for t in rollouts:
        assert {"rollout.reward.says_yes", "rollout.reward.brevity"} <= set(t["metadata"])
        assert t["messages"][0]["role"] == "user"
        (generation,) = [s for s in t["spans"] if s["kind"] == "generation"]
        assert generation["output"]["role"] == "assistant"
    rows = [r for r in scalars(project) if "train/reward" in r]
    assert [r["step"] for r in rows] == [1, 2]
    timed = [r for r in scalars(project) if "train/phase/generate_ms" in r]
    assert [r["step"] for r in timed] == [1, 2]


def test_autoinstrument_command(trackio_dir, project):
    out = run_example(
        [
            str(BIN / "opentelemetry-instrument"),
            *("--traces_exporter", "trackio", "--metrics_exporter", "trackio"),
            *("--logs_exporter", "trackio"),
            sys.executable,
            "examples/autoinstrument_app.py",
        ],
        trackio_dir,
        OTEL_RESOURCE_ATTRIBUTES=f"trackio.project={project}",
        OTEL_SERVICE_NAME="demo-app",
    )
    assert "You asked: hello?" in out
    traces = traces_of(project)
    assert [t["key"] for t in traces] == ["handle_request", "handle_request"]
    chat = traces[0]
    assert chat["messages"] == [
        {"role": "user", "content": "hello?"},
        {"role": "assistant", "content": "You asked: hello?"},
    ]
    assert [s["kind"] for s in chat["spans"]] == ["span", "generation"]
    run = only_run(project)
    system = SQLiteStorage.get_system_logs(project, run["name"], run_id=run["id"])
    assert any(row.get("app.requests") == 2.0 for row in system)
