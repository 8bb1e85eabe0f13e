"""The collector: receivers (OTLP/gRPC, OTLP/HTTP) → pipeline (bounded queue) → writer
processes → store, started and stopped as one.

with Collector(CollectorConfig(trackio_dir="./trackio", endpoint="127.0.0.1:0",
                               http_endpoint="127.0.0.1:0")) as c:
    print(c.port, c.http_port)   # OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:<port>

Both receivers run on one asyncio event loop, on a thread of their own: a request waiting
for its commit, or a client that sends nothing, costs a coroutine, never a thread.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from trackio_otel.collector import http
from trackio_otel.collector.config import MIB, CollectorConfig, Endpoint
from trackio_otel.collector.pipeline import Pipeline, Stats
from trackio_otel.collector.receiver import Receiver
from trackio_otel.collector.security import TLS, is_loopback
from trackio_otel.writer import WriterPool

__all__ = ["MIB", "Collector", "CollectorConfig", "Endpoint", "Stats"]
log = logging.getLogger("trackio_otel.collector")
T = TypeVar("T")


class Collector:
    def __init__(self, config: CollectorConfig | None = None) -> None:
        self.config = config or CollectorConfig()
        self.pipeline = Pipeline(
            WriterPool(self.config.trackio_dir, self.config.writers),
            self.config.max_queue_bytes,
            self.config.write_timeout_s,
        )
        self.port = 0
        self.http_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._grpc: Receiver | None = None
        self._http: http.HttpReceiver | None = None
        self._stopped = threading.Event()
        self._stats_thread = threading.Thread(
            target=self._report, name="trackio-otel-stats", daemon=True
        )

    @property
    def stats(self) -> Stats:
        return self.pipeline.stats

    def start(self) -> Collector:
        """Check everything that can be wrong with the settings (addresses, TLS files, the
        Trackio directory) before anything is accepted; raise ``ValueError`` or ``OSError``
        with one line saying what."""
        c = self.config
        grpc_endpoint, http_endpoint = c.grpc(), c.http()
        tls = TLS.from_files(c.tls_cert_file, c.tls_key_file, c.tls_client_ca_file)
        check_writable(c)
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="trackio-otel-io", daemon=True
        )
        self._loop_thread.start()
        try:
            self._run(self._bind(grpc_endpoint, http_endpoint, tls))
            self.pipeline.writers.start()
            self._run(self._serve())
        except BaseException:
            self._shut(grace_s=0)
            raise
        self._log_start(grpc_endpoint, http_endpoint, tls)
        self._stats_thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, let in-flight requests commit and be answered, stop the writers."""
        if self._stopped.is_set():
            return
        self._shut(self.config.shutdown_grace_s)
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

    async def _bind(
        self, grpc_endpoint: Endpoint, http_endpoint: Endpoint | None, tls: TLS | None
    ) -> None:
        """Bind both addresses (not yet serving), so a port in use fails before the writers
        start."""
        c = self.config
        self._grpc = Receiver(self.pipeline, grpc_endpoint, c.max_message_bytes, tls, c.auth_token)
        self.port = self._grpc.port
        if http_endpoint:
            asgi = http.app(
                self.pipeline,
                c.max_message_bytes,
                c.auth_token,
                c.http_cors_origins,
                c.http_read_timeout_s,
            )
            self._http = http.HttpReceiver(asgi, http_endpoint, tls, c.http_read_timeout_s)
            self.http_port = self._http.port

    async def _serve(self) -> None:
        assert self._grpc
        await self._grpc.start()
        if self._http:
            await self._http.start()

    def _shut(self, grace_s: float) -> None:
        self._stopped.set()
        if self._loop and self._loop_thread:
            self._run(self._stop_servers(grace_s))
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join()
            self._loop.close()
        self.pipeline.close()

    async def _stop_servers(self, grace_s: float) -> None:
        await asyncio.gather(*(s.stop(grace_s) for s in (self._grpc, self._http) if s))

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the event loop's thread and wait for it."""
        assert self._loop
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def _log_start(
        self, grpc_endpoint: Endpoint, http_endpoint: Endpoint | None, tls: TLS | None
    ) -> None:
        scheme = "https" if tls else "http"
        served = [f"{grpc_endpoint.host}:{self.port} (OTLP/gRPC)"]
        if http_endpoint:
            served.append(f"{scheme}://{http_endpoint.host}:{self.http_port}/v1/* (OTLP/HTTP)")
        writers = self.config.writers
        log.info(
            "trackio-otel collector listening on %s%s%s, writing to %s (%s)",
            " and ".join(served),
            " with TLS" if tls else "",
            " and mutual TLS" if tls and tls.client_ca_file else "",
            self.config.trackio_dir,
            f"{writers} writer processes" if writers else "in process",
        )
        exposed = [e for e in (grpc_endpoint, http_endpoint) if e and not is_loopback(e.host)]
        if exposed and not self.config.auth_token:
            log.warning(
                "listening on %s without a token: anyone who can reach it can write into %s; "
                "add --auth-token-file FILE (or $TRACKIO_OTEL_AUTH_TOKEN) and TLS "
                "(--tls-cert-file, --tls-key-file)",
                " and ".join(map(str, exposed)),
                self.config.trackio_dir,
            )

    def _report(self) -> None:
        """A stats line when something changed: an idle collector's log stays quiet."""
        last = ""
        while not self._stopped.wait(self.config.stats_interval_s):
            line = self.stats_line()
            if line != last:
                log.info("stats: %s", line)
                last = line


def check_writable(config: CollectorConfig) -> None:
    """Create the Trackio directory and write a file in it, so a read-only one fails at start
    rather than on every request."""
    try:
        config.trackio_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=config.trackio_dir):
            pass
    except OSError as exc:
        raise OSError(
            f"cannot write to the Trackio directory {config.trackio_dir}: {exc.strerror or exc}"
        ) from None
