"""Zero-config auto-instrumentation, as a new user gets it: a fresh virtualenv with only
``trackio-otel[openai]`` installed (the way a user would, from this checkout; no
``opentelemetry-distro``, no ``trackio``), an app that never imports OpenTelemetry, the
real ``openai`` client against the stub server, and no exporter flags.

The venv is built once per session (pip's cache makes later sessions quick).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import only_run, traces_of
from tests.stub_openai import CALL_ID, FINAL_ANSWER, MODEL, serve

ROOT = Path(__file__).resolve().parent.parent
APP = textwrap.dedent(
    """
    import json, os, sys
    import openai

    client = openai.OpenAI(base_url=os.environ["STUB_URL"], api_key="sk-stub", max_retries=0)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"location": {"type": "string"}}}}}]
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    call = first.choices[0].message.tool_calls[0]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"temp_f": 57}'})
    final = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    print(final.choices[0].message.content)
    sys.exit(int(os.environ.get("APP_EXIT", "0")))
    """
)


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"{ROOT}[openai]"],
        check=True,
        timeout=900,
    )
    listed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    assert "opentelemetry-instrumentation==" in listed
    assert "opentelemetry-distro" not in listed and "trackio==" not in listed
    return venv


@pytest.fixture(scope="module")
def stub_url():
    with serve() as url:
        yield url


def app_env(tmp_path: Path, trackio_dir: Path, stub_url: str, **extra: str) -> dict[str, str]:
    (tmp_path / "app.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHON"))}
    return {**env, "TRACKIO_DIR": str(trackio_dir), "STUB_URL": stub_url, **extra}


def generations(project: str) -> list[dict]:
    run = only_run(project)
    spans = [s for t in traces_of(project, run) for s in t["spans"]]
    return [s for s in spans if s["kind"] == "generation"]


def test_opentelemetry_instrument_with_no_flags_lands_in_trackio(
    fresh_venv, tmp_path, trackio_dir, project, stub_url
):
    env = app_env(
        tmp_path, trackio_dir, stub_url, OTEL_RESOURCE_ATTRIBUTES=f"trackio.project={project}"
    )
    done = subprocess.run(
        [str(fresh_venv / "bin" / "opentelemetry-instrument"), "python", "app.py"],
        cwd=tmp_path,
        env={**env, "PATH": f"{fresh_venv / 'bin'}:{env['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert FINAL_ANSWER in done.stdout
    chats = generations(project)
    assert len(chats) == 2, chats
    assert {s["model"] for s in chats} == {MODEL}


def test_trackio_otel_run_lands_the_chat_and_reports(
    fresh_venv, tmp_path, trackio_dir, project, stub_url
):
    env = app_env(tmp_path, trackio_dir, stub_url, APP_EXIT="3")
    done = subprocess.run(  # not activated: `python` is trackio-otel's own interpreter
        [
            str(fresh_venv / "bin" / "trackio-otel"),
            "run",
            "--project",
            project,
            "--run",
            "r1",
            "--",
            "python",
            "app.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr  # the program's exit code
    assert "trackio-otel: instrumented openai (opentelemetry-instrumentation-openai-v2" in (
        done.stderr
    )
    # two chat spans, and openai-v2's own gen_ai.client.* metrics
    where = re.escape(f"→ Trackio directory {trackio_dir}")
    line = rf"2 spans in 2 traces, [1-9]\d* metric points, 0 log records {where}"
    assert re.search(line, done.stderr), done.stderr
    assert f"trackio show --project {project}" in done.stderr
    run = only_run(project)
    assert run["name"] == "r1"
    last = traces_of(project, run)[-1]  # content captured: the whole chat
    assert [m["role"] for m in last["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert last["messages"][1]["tool_calls"][0]["id"] == CALL_ID
    assert last["messages"][-1]["content"] == FINAL_ANSWER


def run_app(
    cwd: Path, trackio_dir: Path, project: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``trackio-otel run --project P -- python app.py`` from this venv, no OTEL_* set."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "trackio-otel"),
            *("run", "--project", project, "--", "python", "app.py"),
        ],
        cwd=cwd,
        env={**clean, **env, "TRACKIO_DIR": str(trackio_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_trackio_otel_run_reports_an_instrumentor_that_fails_to_import(
    tmp_path, trackio_dir, project
):
    """A real entry point whose module imports something missing: ``opentelemetry-
    instrument`` logs that at debug level only; ``trackio-otel run`` says it."""
    lib = tmp_path / "lib"
    dist = lib / "broken_instrumentation-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-instrumentation\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[opentelemetry_instrumentor]\nbroken = broken_instrumentation:Instrumentor\n"
    )
    (lib / "broken_instrumentation.py").write_text("import httpx_that_is_not_installed\n")
    (tmp_path / "app.py").write_text("print('ran')\n")
    done = run_app(tmp_path, trackio_dir, project, PYTHONPATH=str(lib))
    assert done.returncode == 0, done.stderr
    assert "ran" in done.stdout
    assert (
        "trackio-otel: NOT instrumented broken (broken-instrumentation 0.1): "
        "ModuleNotFoundError: No module named 'httpx_that_is_not_installed'"
    ) in done.stderr, done.stderr


SHOW = "import os; print(*(os.environ.get(f'OTEL_{v}') for v in ('TRACES_EXPORTER', 'PYTHON_ID_GENERATOR')))"  # noqa: E501
OURS_FIRST = """[opentelemetry_distro]
trackio = trackio_otel.sdk.distro:TrackioDistro
[opentelemetry_configurator]
trackio = trackio_otel.sdk.distro:TrackioConfigurator
"""


@pytest.mark.parametrize("ours_first", [False, True])
@pytest.mark.parametrize(
    "selected, expected",
    [
        ({}, "otlp None"),  # opentelemetry-distro's defaults, whichever entry point came first
        (
            {"OTEL_PYTHON_DISTRO": "trackio", "OTEL_PYTHON_CONFIGURATOR": "trackio"},
            "trackio trackio",
        ),
        ({"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator"}, "otlp None"),
    ],
)
def test_beside_opentelemetry_distro_the_selected_one_configures(
    tmp_path, selected, expected, ours_first
):
    """This venv has opentelemetry-distro too: trackio-otel steps aside unless chosen, in
    either entry point order (``ours_first``: our entry points listed again, on PYTHONPATH,
    so the loader meets them before site-packages')."""
    (tmp_path / "show.py").write_text(SHOW)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if ours_first:
        first = tmp_path / "first" / "aaa_trackio_first-0.dist-info"
        first.mkdir(parents=True)
        (first / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: aaa-trackio-first\nVersion: 0\n"
        )
        (first / "entry_points.txt").write_text(OURS_FIRST)
        env["PYTHONPATH"] = str(first.parent)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable, "show.py"],
        cwd=tmp_path,
        env={**env, **selected, "OTEL_SDK_DISABLED": "true"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected, done.stderr


PARENT_AND_CHILD = textwrap.dedent(
    """
    import subprocess, sys
    from opentelemetry import trace

    trace.get_tracer("parent").start_span("parent").end()
    child = "from opentelemetry import trace; trace.get_tracer('c').start_span('child').end()"
    subprocess.run([sys.executable, "-c", child], check=True)
    """
)


def test_trackio_otel_run_counts_every_python_process_it_starts(tmp_path, trackio_dir, project):
    (tmp_path / "app.py").write_text(PARENT_AND_CHILD)
    done = run_app(tmp_path, trackio_dir, project)
    assert done.returncode == 0, done.stderr
    where = f"→ Trackio directory {trackio_dir}"
    line = f"2 spans in 2 traces, 0 metric points, 0 log records {where}"
    assert line in done.stderr, done.stderr
