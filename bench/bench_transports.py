"""Transport benchmark: committed spans/s over OTLP/HTTP against OTLP/gRPC, and what TLS and
a bearer token cost on each, as ratios measured in one run.

Same payload and the same ``trackio-otel collect`` process as bench_collector.py (its
``Requests`` and ``CollectorProcess``); closed-loop clients send pre-serialized requests,
gRPC through a raw channel and HTTP through a ``requests`` session, each to a fresh
collector and Trackio directory per configuration. Configurations are interleaved over
``--rounds`` so drift lands on all of them alike; each figure is the median of its rounds.

    python bench/bench_transports.py                 # 6 configurations x 2 rounds, ~3 min
    python bench/bench_transports.py --seconds 5 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import requests as http_client
from bench_collector import EXPORT, CollectorProcess, Requests, count_rows

TOKEN = "bench-token"
Send = Callable[[bytes], None]


def make_certificate(work: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl, as an operator would make one)."""
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def grpc_sender(target: str, cert: Path | None, token: bool) -> tuple[Send, Callable[[], None]]:
    channel = (
        grpc.secure_channel(target, grpc.ssl_channel_credentials(cert.read_bytes()))
        if cert
        else grpc.insecure_channel(target)
    )
    export = channel.unary_unary(EXPORT)
    metadata = (("authorization", f"Bearer {TOKEN}"),) if token else None

    def send(raw: bytes) -> None:
        export(raw, timeout=60, metadata=metadata)

    return send, channel.close


def http_sender(port: int, cert: Path | None, token: bool) -> tuple[Send, Callable[[], None]]:
    session = http_client.Session()
    url = f"{'https' if cert else 'http'}://127.0.0.1:{port}/v1/traces"
    headers = {"Content-Type": "application/x-protobuf"}
    if token:
        headers["Authorization"] = f"Bearer {TOKEN}"
    verify = str(cert) if cert else True  # per request: REQUESTS_CA_BUNDLE beats the session's

    def send(raw: bytes) -> None:
        session.post(url, data=raw, headers=headers, timeout=60, verify=verify).raise_for_status()

    return send, session.close


def measure(
    transport: str, tls: bool, token: bool, args: argparse.Namespace, work: Path, reqs: Requests
) -> float:
    """Committed spans/s of one configuration on a fresh collector, checked against the db."""
    cert = key = None
    extra: list[str] = []
    if tls:
        cert, key = make_certificate(work)
        extra += ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    if token:
        (work / "token").write_text(TOKEN)
        extra += ["--auth-token-file", str(work / "token")]
    trackio_dir = work / f"trackio-{transport}-{tls}-{token}-{time.monotonic_ns()}"
    credentials = grpc.ssl_channel_credentials(cert.read_bytes()) if cert else None
    collector = CollectorProcess(trackio_dir, 32, args.writers, extra, credentials)
    ok, errors, lock = [0], [0], threading.Lock()
    deadline = time.perf_counter() + args.seconds

    def client() -> None:
        send, close = (
            grpc_sender(collector.target, cert, token)
            if transport == "grpc"
            else http_sender(collector.http_port, cert, token)
        )
        try:
            while time.perf_counter() < deadline:
                try:
                    send(reqs.next())
                except (grpc.RpcError, http_client.RequestException):
                    with lock:
                        errors[0] += 1
                else:
                    with lock:
                        ok[0] += reqs.spans
        finally:
            close()

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    collector.stop()
    stored, _ = count_rows(trackio_dir)
    assert stored == ok[0], f"{transport}: {ok[0]} spans acknowledged, {stored} stored"
    assert not errors[0], f"{transport}: {errors[0]} failed requests"
    shutil.rmtree(trackio_dir)
    return ok[0] / elapsed


CONFIGS = [
    ("grpc", False, False),
    ("http", False, False),
    ("grpc", True, False),
    ("http", True, False),
    ("grpc", False, True),
    ("http", False, True),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="per configuration")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument("--writers", type=int, default=None)
    args = parser.parse_args()
    reqs = Requests(args.spans_per_request)
    work = Path(tempfile.mkdtemp(prefix="trackio-otel-bench-transports-"))
    print(
        f"{os.cpu_count()} CPUs; {args.clients} clients; requests of {reqs.spans} spans, "
        f"{len(reqs.raw)} bytes; {args.rounds} rounds of {args.seconds:g} s per configuration"
    )
    rates: dict[tuple[str, bool, bool], list[float]] = {c: [] for c in CONFIGS}
    for _ in range(args.rounds):
        for config in CONFIGS:
            rates[config].append(measure(*config, args, work, reqs))
    shutil.rmtree(work)
    median = {c: statistics.median(r) for c, r in rates.items()}
    for (transport, tls, token), rate in median.items():
        label = f"{transport:4} {'TLS' if tls else 'plain':5} {'token' if token else '':5}"
        runs = ", ".join(f"{r:,.0f}" for r in rates[(transport, tls, token)])
        print(f"{label} {rate:9,.0f} committed spans/s  (rounds: {runs})")
    plain = {t: median[(t, False, False)] for t in ("grpc", "http")}
    print(f"HTTP / gRPC, plain:          {plain['http'] / plain['grpc']:.3f}")
    for t in ("grpc", "http"):
        print(f"{t:4} TLS / plain:             {median[(t, True, False)] / plain[t]:.3f}")
        print(f"{t:4} token / plain:           {median[(t, False, True)] / plain[t]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
