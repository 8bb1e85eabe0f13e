"""Bounded queue + one writer thread that commits concurrent requests together.

A request's bytes are reserved before it is decoded; when the reservation would exceed
the bound the caller is told to retry later (never a silent drop). The writer takes
everything queued, commits it in one transaction per project (group commit), and only
then releases the waiting requests, so an acknowledged export is always on disk.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field

from trackio_otel.store.sqlite import SQLiteStore
from trackio_otel.translate.model import Batch

log = logging.getLogger(__name__)


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


@dataclass(eq=False)
class _Item:
    batch: Batch
    nbytes: int
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class Reservation:
    """Room in the queue for one request, held from arrival until commit or failure."""

    def __init__(self, pipeline: Pipeline, nbytes: int) -> None:
        self._pipeline, self.nbytes, self._open = pipeline, nbytes, True

    def release(self) -> None:
        if self._open:
            self._open = False
            self._pipeline._release(self.nbytes)


class Pipeline:
    def __init__(self, store: SQLiteStore, max_queue_bytes: int, max_commit_bytes: int = 16 << 20):
        self.store = store
        self.max_queue_bytes = max_queue_bytes
        self.max_commit_bytes = max_commit_bytes
        self.stats = Stats()
        self._cond = threading.Condition()
        self._queue: deque[_Item] = deque()
        self._reserved = 0
        self._closing = False
        self._writer = threading.Thread(target=self._run, name="trackio-otel-writer", daemon=True)
        self._writer.start()

    def reserve(self, nbytes: int) -> Reservation:
        with self._cond:
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
        return Reservation(self, nbytes)

    def commit(self, batch: Batch, reservation: Reservation) -> None:
        """Block until ``batch`` is committed; raise what the store raised otherwise."""
        item = _Item(batch, reservation.nbytes)
        with self._cond:
            self.stats.received += batch.size
            self.stats.rejected += batch.rejected
            self._queue.append(item)
            self.stats.queued_requests = len(self._queue)
            self._cond.notify()
        try:
            item.done.wait()
        finally:
            reservation.release()
        if item.error is not None:
            raise item.error

    def close(self) -> None:
        """Stop accepting, commit everything queued, stop the writer."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._writer.join()

    def _release(self, nbytes: int) -> None:
        with self._cond:
            self._reserved -= nbytes
            self.stats.queued_bytes = self._reserved

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                items, size = [], 0
                while self._queue and (
                    not items or size + self._queue[0].nbytes <= self.max_commit_bytes
                ):
                    item = self._queue.popleft()
                    items.append(item)
                    size += item.nbytes
                self.stats.queued_requests = len(self._queue)
            self._commit(items)

    def _commit(self, items: list[_Item]) -> None:
        merged = Batch()
        for item in items:
            merged.extend(item.batch)
        try:
            self.store.write(merged)
        except Exception as exc:
            if len(items) == 1:
                self._finish(items[0], exc)
                return
            # Isolate the bad request; writes are idempotent, so redoing committed parts is safe.
            for item in items:
                try:
                    self.store.write(item.batch)
                except Exception as item_exc:
                    self._finish(item, item_exc)
                else:
                    self._finish(item)
            return
        for item in items:
            self._finish(item)

    def _finish(self, item: _Item, error: BaseException | None = None) -> None:
        if error is not None:
            log.warning("could not commit a request of %d records: %s", item.batch.size, error)
        with self._cond:
            if error is None:
                self.stats.committed += item.batch.size
            else:
                self.stats.failed_requests += 1
        item.error = error
        item.done.set()
