"""``trackio-otel``: the command line, mirroring the library's ``Collector``; ``run`` is
``sdk.launch``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from trackio_otel import __version__
from trackio_otel.collector import MIB, Collector, CollectorConfig
from trackio_otel.collector.security import TOKEN_ENV, load_token
from trackio_otel.store import default_trackio_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="trackio-otel",
        description="OpenTelemetry in, Trackio out: collect OTLP into a Trackio directory, "
        "or run a program under auto-instrumentation.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run a program under OpenTelemetry auto-instrumentation, into Trackio",
        description="Run COMMAND auto-instrumented (as opentelemetry-instrument does) with "
        "the run's identity set; say which instrumentors loaded or failed, and at exit what "
        "went where. Without --endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT) data goes straight "
        "into the Trackio directory. Exits with COMMAND's exit code.",
        usage="trackio-otel run [--project P] [--run R] [--endpoint URL] -- COMMAND ...",
    )
    run.add_argument("--project", help="Trackio project (default: the program's name)")
    run.add_argument("--run", dest="run_name", help="run name (default: one per process)")
    run.add_argument("--endpoint", help="OTLP endpoint instead of the Trackio directory")
    run.add_argument("--trackio-dir", type=Path, help="Trackio directory (default: Trackio's)")
    run.add_argument(
        "program", nargs=argparse.REMAINDER, help="COMMAND: the program and its arguments"
    )
    collect = commands.add_parser(
        "collect",
        help="run the OTLP receiver, writing into a Trackio directory",
        description="Receive OTLP traces, metrics and logs (gRPC and HTTP) and write them into "
        "Trackio's database until SIGINT/SIGTERM.",
    )
    defaults = CollectorConfig(trackio_dir=Path("."))
    collect.add_argument(
        "--trackio-dir",
        type=Path,
        default=None,
        help="Trackio directory (default: $TRACKIO_DIR, else $HF_HOME/trackio, "
        "else ~/.cache/huggingface/trackio)",
    )
    collect.add_argument(
        "--grpc-endpoint",
        default=defaults.endpoint,
        help="OTLP/gRPC HOST:PORT (default %(default)s; 0.0.0.0 to accept other hosts)",
    )
    collect.add_argument(
        "--http-endpoint",
        default=defaults.http_endpoint,
        help="OTLP/HTTP HOST:PORT, or 'off' (default %(default)s)",
    )
    collect.add_argument(
        "--http-cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let a browser app at ORIGIN send OTLP/HTTP (repeatable; no CORS without it)",
    )
    collect.add_argument("--tls-cert-file", type=Path, help="serve TLS with this certificate")
    collect.add_argument("--tls-key-file", type=Path, help="the certificate's private key")
    collect.add_argument(
        "--tls-client-ca-file",
        type=Path,
        help="require client certificates signed by this CA (mutual TLS)",
    )
    collect.add_argument(
        "--auth-token-file",
        type=Path,
        help="require 'Authorization: Bearer <token>' with the token in this file "
        f"(default: ${TOKEN_ENV} if set)",
    )
    collect.add_argument(
        "--max-message-mib",
        type=int,
        default=defaults.max_message_bytes // MIB,
        help="largest request accepted (default %(default)s MiB)",
    )
    collect.add_argument(
        "--http-read-timeout",
        type=float,
        default=defaults.http_read_timeout_s,
        metavar="SECONDS",
        help="close an OTLP/HTTP connection whose headers take longer, or whose body "
        "sends nothing this long (408) (default %(default)g)",
    )
    collect.add_argument(
        "--max-queue-mib",
        type=int,
        default=defaults.max_queue_bytes // MIB,
        help="request bytes held before exporters are told to back off (default %(default)s MiB)",
    )
    collect.add_argument(
        "--writers",
        type=int,
        default=defaults.writers,
        help="writer processes that decode, translate and commit in parallel; 0 writes "
        "in process (default %(default)s: the CPU count, at most 4)",
    )
    collect.add_argument(
        "--stats-interval",
        type=float,
        default=defaults.stats_interval_s,
        help="seconds between stats lines, each written only when a count changed "
        "(default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        from trackio_otel.sdk import launch

        program = args.program[1:] if args.program[:1] == ["--"] else args.program
        return launch.run(program, args.project, args.run_name, args.endpoint, args.trackio_dir)

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = CollectorConfig(
            trackio_dir=args.trackio_dir or default_trackio_dir(),
            endpoint=args.grpc_endpoint,
            http_endpoint=args.http_endpoint,
            http_cors_origins=tuple(args.http_cors_origin),
            tls_cert_file=args.tls_cert_file,
            tls_key_file=args.tls_key_file,
            tls_client_ca_file=args.tls_client_ca_file,
            auth_token=load_token(args.auth_token_file),
            max_message_bytes=args.max_message_mib * MIB,
            max_queue_bytes=args.max_queue_mib * MIB,
            http_read_timeout_s=args.http_read_timeout,
            writers=args.writers,
            stats_interval_s=args.stats_interval,
        )
        collector = Collector(config).start()
    except (OSError, ValueError) as exc:  # nothing was accepted: say why in one line
        print(f"trackio-otel: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    collector.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
