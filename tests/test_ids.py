"""Seeded runs never share trace or span ids (the OTel SDK's default generator draws from
Python's global ``random``, which training scripts seed): two runs seeded alike, re-seeded
before every rollout, land whole, through the SDK and through ``opentelemetry-instrument``."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from trackio.sqlite_storage import SQLiteStorage

from tests.conftest import runs, traces_of
from trackio_otel.sdk.ids import UrandomIdGenerator

BIN = Path(sys.executable).parent
SDK_RUN = textwrap.dedent(
    """
    import random, sys
    import trackio_otel

    random.seed(0)
    run = trackio_otel.init(project=sys.argv[1], name=sys.argv[2], gpu=False)
    for i in range(4):
        random.seed(0)  # as an RL environment does before every episode
        with run.rollout(step=i, group="g", index=i) as r:
            r.message("user", f"question {i}")
            r.generation(model="m", output=f"answer {i} of {sys.argv[2]}")
            r.reward(float(i))
    run.finish()
    """
)
OTEL_APP = textwrap.dedent(
    """
    import random
    from opentelemetry import trace

    tracer = trace.get_tracer("seeded")
    for i in range(3):
        random.seed(0)
        with tracer.start_as_current_span(f"episode {i}"):
            with tracer.start_as_current_span("act"):
                pass
    """
)


def run_ok(args: list[str], trackio_dir: Path, cwd: Path | None = None, **env: str) -> None:
    """Run ``args`` with no OTEL_* of this process (only ``env``'s), into ``trackio_dir``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        args,
        cwd=cwd,
        env={**clean, "TRACKIO_DIR": str(trackio_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def span_count(project: str) -> int:
    with sqlite3.connect(SQLiteStorage.get_project_db_path(project)) as db:
        return db.execute("SELECT count(*) FROM otel_spans").fetchone()[0]


def test_the_generator_ignores_the_global_seed():
    gen = UrandomIdGenerator()
    random.seed(0)
    first = (gen.generate_trace_id(), gen.generate_span_id())
    random.seed(0)
    assert (gen.generate_trace_id(), gen.generate_span_id()) != first


def test_two_seeded_sdk_runs_land_whole(trackio_dir, project):
    for name in ("seed0-a", "seed0-b"):
        run_ok([sys.executable, "-c", SDK_RUN, project, name], trackio_dir)
    by_name = {r["name"]: r for r in runs(project)}
    assert set(by_name) == {"seed0-a", "seed0-b"}
    for name, run in by_name.items():
        traces = traces_of(project, run)
        assert [t["step"] for t in traces] == [0, 1, 2, 3]
        for i, t in enumerate(traces):  # one rollout per trace, each with its own answer
            assert t["messages"][-1]["content"] == f"answer {i} of {name}"
            assert t["metadata"]["rollout.reward"] == float(i)
    assert span_count(project) == 2 * 4 * 2


def test_two_seeded_auto_instrumented_runs_land_whole(trackio_dir, project, tmp_path):
    """Through the distro: ``OTEL_PYTHON_ID_GENERATOR`` defaults to ``trackio``."""
    (tmp_path / "app.py").write_text(OTEL_APP)
    for name in ("auto-a", "auto-b"):
        run_ok(
            [str(BIN / "opentelemetry-instrument"), sys.executable, "app.py"],
            trackio_dir,
            cwd=tmp_path,
            OTEL_PYTHON_DISTRO="trackio",  # opentelemetry-distro is installed here too
            OTEL_PYTHON_CONFIGURATOR="trackio",
            OTEL_RESOURCE_ATTRIBUTES=f"trackio.project={project},trackio.run.name={name}",
        )
    by_name = {r["name"]: r for r in runs(project)}
    assert set(by_name) == {"auto-a", "auto-b"}
    for run in by_name.values():
        assert [t["key"] for t in traces_of(project, run)] == [f"episode {i}" for i in range(3)]
    assert span_count(project) == 2 * 3 * 2
