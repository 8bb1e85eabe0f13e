"""A writer process: ``python -m trackio_otel.writer TRACKIO_DIR``.

Reads framed OTLP requests on stdin, commits them into the Trackio directory, answers on
stdout. It ignores SIGINT and SIGTERM (a terminal's Ctrl+C reaches the whole process
group): it stops when its parent closes stdin, or dies, after committing and answering
everything it has read.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import sys
import threading

from trackio_otel.store.sqlite import SQLiteStore
from trackio_otel.writer import protocol
from trackio_otel.writer.core import Inbox, Reply, serve

GC_THRESHOLDS = (10_000, 10, 10)


def main(trackio_dir: str) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    # Each request allocates (and frees, by reference counting) millions of objects; at the
    # default thresholds the cycle collector runs hundreds of times per second for nothing.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the answer stream
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    inbox = Inbox()

    def read() -> None:
        while (request := protocol.read_request(requests)) is not None:
            inbox.put(request)
        inbox.close()

    def answer(request_id: int, reply: Reply) -> None:
        with contextlib.suppress(BrokenPipeError):  # parent gone: keep committing what was read
            protocol.send_answer(answers, request_id, reply)

    threading.Thread(target=read, name="trackio-otel-reader", daemon=True).start()
    store = SQLiteStore(trackio_dir)
    answer(protocol.READY, {})
    try:
        serve(store, inbox, answer)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
