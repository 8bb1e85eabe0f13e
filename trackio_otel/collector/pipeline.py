"""Bounded admission in front of the writers, shared by the gRPC and HTTP receivers.

A request's bytes are reserved when it arrives and released once its writer answered;
when a reservation would exceed the bound the caller is told to retry later (never a
silent drop). The writers commit concurrent requests together and answer only after the
commit, so an acknowledged export is always on disk. Receivers await the answer on the
event loop (no thread parked per request), for at most ``write_timeout_s``: a writer that
stops answering costs its callers an UNAVAILABLE (retried; writes are idempotent, so the
retry cannot duplicate), and keeps its reservation until it does answer, so a stuck
writer fills the queue and further requests are told to back off instead of piling up.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from trackio_otel.writer import Result, WriteError, WriterPool


class QueueFull(Exception):
    """The queue is at its byte bound; retry after a short delay."""


class ShuttingDown(Exception):
    """The pipeline no longer accepts work."""


@dataclass
class Stats:
    received: int = 0
    committed: int = 0
    rejected: int = 0
    refused_requests: int = 0
    failed_requests: int = 0
    queued_bytes: int = 0
    queued_requests: int = 0


class Pipeline:
    def __init__(self, writers: WriterPool, max_queue_bytes: int, write_timeout_s: float) -> None:
        self.writers = writers
        self.max_queue_bytes = max_queue_bytes
        self.write_timeout_s = write_timeout_s
        self.stats = Stats()
        self._lock = threading.Lock()
        self._reserved = 0
        self._closing = False

    async def export(self, signal: str, payload: bytes, encoding: str = "protobuf") -> Result:
        """Return once the request is committed. Raises ``QueueFull`` or ``ShuttingDown``
        (nothing was taken), or ``WriteError`` (not committed; ``kind`` says why)."""
        self._reserve(len(payload))
        try:
            future = self.writers.submit(signal, payload, encoding)
        except WriteError as exc:
            self._settle(len(payload), exc)
            raise
        future.add_done_callback(lambda f: self._settle(len(payload), f.exception() or f.result()))
        try:
            # shield: a caller that times out or goes away must not cancel the writer's
            # future, which the writer still answers.
            return await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(future)), self.write_timeout_s
            )
        except asyncio.TimeoutError:
            raise WriteError(
                "unavailable", f"no commit within {self.write_timeout_s:g} s; retry later"
            ) from None

    def close(self) -> None:
        """Stop accepting; the writers commit what they hold, then stop."""
        with self._lock:
            self._closing = True
        self.writers.close()

    def _reserve(self, nbytes: int) -> None:
        with self._lock:
            if self._closing:
                raise ShuttingDown("collector is shutting down")
            # One request always fits into an empty queue, whatever its size.
            if self._reserved and self._reserved + nbytes > self.max_queue_bytes:
                self.stats.refused_requests += 1
                raise QueueFull(
                    f"queue holds {self._reserved} of {self.max_queue_bytes} bytes; retry later"
                )
            self._reserved += nbytes
            self.stats.queued_bytes = self._reserved
            self.stats.queued_requests += 1

    def _settle(self, nbytes: int, outcome: Result | BaseException) -> None:
        """The writer answered (on its answering thread): release and count."""
        with self._lock:
            self._reserved -= nbytes
            self.stats.queued_bytes = self._reserved
            self.stats.queued_requests -= 1
            if isinstance(outcome, Result):
                self.stats.received += outcome.records
                self.stats.committed += outcome.records
                self.stats.rejected += outcome.rejected
            else:
                self.stats.received += getattr(outcome, "records", 0)
                self.stats.failed_requests += 1
