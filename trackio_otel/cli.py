"""``trackio-otel``: the command line, mirroring the library's ``Collector``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from trackio_otel.collector import MIB, Collector, CollectorConfig
from trackio_otel.store import default_trackio_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trackio-otel", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    collect = commands.add_parser(
        "collect",
        help="run the OTLP receiver, writing into a Trackio directory",
        description="Receive OTLP/gRPC traces, metrics and logs and write them into Trackio's "
        "database until SIGINT/SIGTERM.",
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
        help="HOST:PORT to listen on (default %(default)s; 0.0.0.0 to accept other hosts)",
    )
    collect.add_argument(
        "--max-message-mib",
        type=int,
        default=defaults.max_message_bytes // MIB,
        help="largest request accepted (default %(default)s MiB)",
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
        help="seconds between stats lines (default %(default)s)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = CollectorConfig(
        trackio_dir=args.trackio_dir or default_trackio_dir(),
        endpoint=args.grpc_endpoint,
        max_message_bytes=args.max_message_mib * MIB,
        max_queue_bytes=args.max_queue_mib * MIB,
        writers=args.writers,
        stats_interval_s=args.stats_interval,
    )
    collector = Collector(config)
    try:
        collector.start()
    except OSError as exc:
        print(f"trackio-otel: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    collector.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
