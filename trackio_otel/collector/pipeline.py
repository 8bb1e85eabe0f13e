"""Bounded admission in front of the writers.

A request's bytes are reserved when it arrives and released once its writer answered;
when a reservation would exceed the bound the caller is told to retry later (never a
silent drop). The writers commit concurrent requests together and answer only after the
commit, so an acknowledged export is always on disk.
"""

from __future__ import annotations

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


class Reservation:
    """Room in the queue for one request, held from arrival until its answer."""

    def __init__(self, pipeline: Pipeline, nbytes: int) -> None:
        self._pipeline, self.nbytes, self._open = pipeline, nbytes, True

    def release(self) -> None:
        if self._open:
            self._open = False
            self._pipeline._release(self.nbytes)


class Pipeline:
    def __init__(self, writers: WriterPool, max_queue_bytes: int) -> None:
        self.writers = writers
        self.max_queue_bytes = max_queue_bytes
        self.stats = Stats()
        self._lock = threading.Lock()
        self._reserved = 0
        self._closing = False

    def reserve(self, nbytes: int) -> Reservation:
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
        return Reservation(self, nbytes)

    def write(self, signal: str, payload: bytes, reservation: Reservation) -> Result:
        """Block until the request is committed; raise ``WriteError`` if it was not."""
        try:
            result = self.writers.submit(signal, payload).result()
        except WriteError as exc:
            with self._lock:
                self.stats.received += exc.records
                self.stats.failed_requests += 1
            raise
        finally:
            reservation.release()
        with self._lock:
            self.stats.received += result.records
            self.stats.committed += result.records
            self.stats.rejected += result.rejected
        return result

    def close(self) -> None:
        """Stop accepting; the writers commit what they hold, then stop."""
        with self._lock:
            self._closing = True
        self.writers.close()

    def _release(self, nbytes: int) -> None:
        with self._lock:
            self._reserved -= nbytes
            self.stats.queued_bytes = self._reserved
            self.stats.queued_requests -= 1
