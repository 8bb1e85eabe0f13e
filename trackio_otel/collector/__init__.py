"""The collector: receiver → pipeline (bounded queue) → writer processes → store, started
and stopped as one.

with Collector(CollectorConfig(trackio_dir="./trackio", endpoint="127.0.0.1:0")) as c:
    print(c.port)   # point OTEL_EXPORTER_OTLP_ENDPOINT at http://127.0.0.1:<port>
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from trackio_otel.collector.pipeline import Pipeline, Stats
from trackio_otel.collector.receiver import Receiver
from trackio_otel.store import default_trackio_dir
from trackio_otel.writer import WriterPool, default_processes

log = logging.getLogger("trackio_otel.collector")
MIB = 1 << 20


@dataclass
class CollectorConfig:
    trackio_dir: Path = field(default_factory=default_trackio_dir)
    endpoint: str = "127.0.0.1:4317"
    max_message_bytes: int = 64 * MIB
    """Largest request accepted; the OTel SDK's batches stay far below this."""
    max_queue_bytes: int = 32 * MIB
    """Request bytes held (decoding, queued, committing) before exporters are told to back off."""
    writers: int = field(default_factory=default_processes)
    """Writer processes (decode, translate, commit); 0 runs one writer thread in process."""
    stats_interval_s: float = 30.0
    shutdown_grace_s: float = 30.0


class Collector:
    def __init__(self, config: CollectorConfig | None = None) -> None:
        self.config = config or CollectorConfig()
        self.pipeline = Pipeline(
            WriterPool(self.config.trackio_dir, self.config.writers), self.config.max_queue_bytes
        )
        self.receiver = Receiver(self.pipeline, self.config.endpoint, self.config.max_message_bytes)
        self.port = 0
        self._stopped = threading.Event()
        self._stats_thread = threading.Thread(
            target=self._report, name="trackio-otel-stats", daemon=True
        )

    @property
    def stats(self) -> Stats:
        return self.pipeline.stats

    def start(self) -> Collector:
        self.pipeline.writers.start()
        self.port = self.receiver.start()
        host = self.config.endpoint.rsplit(":", 1)[0]
        log.info(
            "trackio-otel collector listening on %s:%d (OTLP/gRPC), writing to %s (%s)",
            host,
            self.port,
            self.config.trackio_dir,
            f"{self.config.writers} writer processes" if self.config.writers else "in process",
        )
        self._stats_thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, let in-flight requests commit and be answered, stop the writers."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.receiver.stop(self.config.shutdown_grace_s)
        self.pipeline.close()
        log.info("trackio-otel collector stopped: %s", self.stats_line())

    def stats_line(self) -> str:
        s = self.stats
        return (
            f"received={s.received} committed={s.committed} rejected={s.rejected} "
            f"refused_requests={s.refused_requests} failed_requests={s.failed_requests} "
            f"queue={s.queued_requests} requests/{s.queued_bytes} bytes"
        )

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _report(self) -> None:
        while not self._stopped.wait(self.config.stats_interval_s):
            log.info("stats: %s", self.stats_line())
