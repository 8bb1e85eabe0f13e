"""``trackio-otel collect`` at start: every bad setting ends in one clear line on stderr and
exit code 2, before anything is acknowledged; a good start serves both transports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.test_collector_robustness import new_span, trace_request, wait_until


def collect(*args: str, trackio_dir: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trackio_otel.cli",
            "collect",
            "--trackio-dir",
            str(trackio_dir),
            "--writers",
            "0",
            *args,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def refused(*args: str, trackio_dir: Path) -> str:
    proc = collect(*args, trackio_dir=trackio_dir)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--grpc-endpoint", "4317"), "--grpc-endpoint '4317': expected HOST:PORT"),
        (("--grpc-endpoint", "127.0.0.1:99999"), "port from 0 to 65535"),
        (("--http-endpoint", "localhost:"), "--http-endpoint 'localhost:'"),
        (("--tls-cert-file", "/nonexistent.pem", "--tls-key-file", "/x"), "No such file"),
        (("--tls-key-file", "/x.pem"), "--tls-cert-file and --tls-key-file go together"),
        (("--auth-token-file", "/nonexistent-token"), "No such file"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(tmp_path, args, says):
    line = refused(
        "--grpc-endpoint",
        "127.0.0.1:0",
        "--http-endpoint",
        "127.0.0.1:0",
        *args,
        trackio_dir=tmp_path,
    )
    assert line.startswith("trackio-otel: ") and says in line, line


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_a_port_in_use_is_one_line_and_exit_2(tmp_path, transport):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        other = f"127.0.0.1:{free_port()}"
        grpc, http = (
            (f"127.0.0.1:{port}", other) if transport == "grpc" else (other, f"127.0.0.1:{port}")
        )
        line = refused("--grpc-endpoint", grpc, "--http-endpoint", http, trackio_dir=tmp_path)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "in use" in line, line


def test_an_unwritable_trackio_dir_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = refused(
        "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "off", trackio_dir=blocker / "trackio"
    )
    assert f"cannot write to the Trackio directory {blocker / 'trackio'}" in line, line


def test_a_good_start_serves_http_with_the_token_from_the_environment(tmp_path):
    http_port = free_port()
    proc = collect(
        "--grpc-endpoint",
        "0.0.0.0:0",
        "--http-endpoint",
        f"127.0.0.1:{http_port}",
        trackio_dir=tmp_path,
        env={"TRACKIO_OTEL_AUTH_TOKEN": "tok"},
    )
    try:
        url = f"http://127.0.0.1:{http_port}/v1/traces"
        body = trace_request("cli-project", new_span("via-cli")).SerializeToString()
        headers = {"Content-Type": "application/x-protobuf"}

        def answered() -> bool:
            try:
                return requests.post(url, data=body, headers=headers, timeout=5).status_code == 401
            except requests.ConnectionError:
                return False

        wait_until(answered, "the collector to listen")
        ok = requests.post(
            url, data=body, headers={**headers, "Authorization": "Bearer tok"}, timeout=30
        )
        assert ok.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "without a token" not in stderr  # exposed, but with a token: no warning
    assert (tmp_path / "cli-project.db").exists()
