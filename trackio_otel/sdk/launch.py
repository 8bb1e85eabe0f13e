"""``trackio-otel run [--project P] [--run R] [--endpoint URL] -- COMMAND…``: a program under
OpenTelemetry auto-instrumentation, landed in Trackio, saying what happened.

It does what ``opentelemetry-instrument`` does (the auto-instrumentation directory first on
``PYTHONPATH``, so the child's ``sitecustomize`` loads the distro, configurator and
instrumentors), with this package's distro selected and the run's identity in
``OTEL_RESOURCE_ATTRIBUTES``. The child prints which instrumentors loaded or failed and
writes what its exporters delivered to a report file (``sdk.distro``); this process waits,
prints one line from it, and exits with the program's exit code.

``python``/``python3`` as the command means this interpreter, the one that has
trackio-otel and the instrumentations installed (so it works without activating a venv).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from trackio_otel import semconv
from trackio_otel.sdk import tally

CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def default_project(command: list[str]) -> str:
    """The program's name: ``python app.py`` → ``app``, ``python -m pkg.mod`` → ``pkg.mod``."""
    args = command[1:] if Path(command[0]).name.startswith("python") else command
    if args[:1] == ["-m"] and len(args) > 1:
        return args[1]
    script = next((a for a in args if not a.startswith("-")), command[0])
    return Path(script).stem or "default"


def child_env(
    command: list[str],
    project: str | None,
    run: str | None,
    endpoint: str | None,
    trackio_dir: Path | None,
    reports: Path,
) -> dict[str, str]:
    """The environment ``opentelemetry-instrument`` would give, plus the run's identity.
    Variables the user set win, except what a flag of this command sets."""
    from opentelemetry.instrumentation import auto_instrumentation

    env = dict(os.environ)
    env.setdefault("OTEL_PYTHON_DISTRO", "trackio")
    env.setdefault("OTEL_PYTHON_CONFIGURATOR", "trackio")
    env.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    env.setdefault(CAPTURE, "span_only")  # the chat is what Trackio shows
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    if trackio_dir:
        env["TRACKIO_DIR"] = str(trackio_dir)
    resource = env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    if project is None and f"{semconv.PROJECT}=" not in resource:
        project = default_project(command)
    extra = [
        f"{key}={quote(value)}"
        for key, value in ((semconv.PROJECT, project), (semconv.RUN_NAME, run))
        if value
    ]
    env["OTEL_RESOURCE_ATTRIBUTES"] = ",".join(p for p in [resource, *extra] if p)
    if project and not env.get("OTEL_SERVICE_NAME") and "service.name=" not in resource:
        env["OTEL_SERVICE_NAME"] = project
    here = os.path.dirname(os.path.abspath(auto_instrumentation.__file__))
    paths = [here, os.getcwd(), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env[tally.REPORT_ENV] = str(reports)
    return env


def summary(report: dict[str, Any], project: str, trackio_dir: str | None, code: int) -> str:
    """The exit line: what went where, and how to look at it."""
    if not report.get("started"):
        return (
            "trackio-otel: the program never loaded auto-instrumentation (is it a Python "
            f"program run by {sys.executable}?); nothing recorded"
        )
    delivered = report.get("delivered", {})
    parts = []
    for where, c in delivered.items():
        points = (
            "metric points not counted" if c["points"] is None else f"{c['points']} metric points"
        )
        spans = f"{c['spans']} spans in {c['traces']} traces"
        parts.append(f"{spans}, {points}, {c['logs']} log records → {where}")
    lines = ["trackio-otel: " + ("; ".join(parts) or "nothing exported")]
    if any(where.startswith("Trackio directory") for where in delivered):
        prefix = f"TRACKIO_DIR={shlex.quote(trackio_dir)} " if trackio_dir else ""
        lines.append(
            f"trackio-otel: open it with: {prefix}trackio show --project {shlex.quote(project)}"
        )
    if code:
        lines.append(f"trackio-otel: the program exited with code {code}")
    return "\n".join(lines)


def run(
    command: list[str],
    project: str | None = None,
    run_name: str | None = None,
    endpoint: str | None = None,
    trackio_dir: Path | None = None,
) -> int:
    """Run ``command`` instrumented; return its exit code (128 + N if killed by signal N)."""
    if not command:
        print("trackio-otel run: no command (trackio-otel run -- python app.py)", file=sys.stderr)
        return 2
    if Path(command[0]).name in ("python", "python3"):
        command = [sys.executable, *command[1:]]
    with tempfile.TemporaryDirectory(prefix="trackio-otel-run-") as tmp:
        env = child_env(command, project, run_name, endpoint, trackio_dir, Path(tmp))
        # Ctrl-C reaches the child (same process group); this process waits to report.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            code = subprocess.call(command, env=env)
        except OSError as exc:
            print(f"trackio-otel run: cannot run {command[0]}: {exc}", file=sys.stderr)
            return 127
        finally:
            signal.signal(signal.SIGINT, previous)
        report = tally.read_reports(Path(tmp))
    code = 128 - code if code < 0 else code
    shown = _last(env["OTEL_RESOURCE_ATTRIBUTES"], semconv.PROJECT) or "default"
    print(summary(report, unquote(shown), env.get("TRACKIO_DIR"), code), file=sys.stderr)
    return code


def _last(resource: str, key: str) -> str | None:
    """The value ``OTEL_RESOURCE_ATTRIBUTES`` ends up giving ``key`` (the last one wins)."""
    values = [p.split("=", 1)[1] for p in resource.split(",") if p.strip().startswith(f"{key}=")]
    return values[-1].strip() if values else None
