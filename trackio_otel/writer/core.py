"""The writer loop: OTLP request bytes in, committed records out, answered one by one.

The same loop runs in a writer process (``python -m trackio_otel.writer``) and, when
asked for no processes, on a thread of the caller's process. It takes what is queued (up
to ``MAX_COMMIT_BYTES``), decodes and translates each request, and commits them together
(group commit); only then does it answer, so an answer of success always means the data
is on disk.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trackio_otel.store import Unavailable
from trackio_otel.translate import logs, metrics, spans
from trackio_otel.translate.conventions import media
from trackio_otel.translate.model import Batch
from trackio_otel.writer import otlp_json

if TYPE_CHECKING:  # the receiver process imports this module but never opens a database
    from trackio_otel.store.sqlite import SQLiteStore

log = logging.getLogger(__name__)

MAX_COMMIT_BYTES = 16 << 20
"""Request bytes committed in one transaction at most (a larger request goes alone)."""

SIGNALS: dict[str, tuple[type[Message], Callable[..., Batch]]] = {
    "traces": (ExportTraceServiceRequest, spans.from_request),
    "metrics": (ExportMetricsServiceRequest, metrics.from_request),
    "logs": (ExportLogsServiceRequest, logs.from_request),
}
ENCODINGS = ("protobuf", "json")
"""How a request's payload is encoded: OTLP protobuf (gRPC, HTTP) or OTLP/JSON (HTTP)."""

Reply = dict[str, Any]
"""``records``, ``rejected``, ``errors`` (problems with items, for OTLP partial success);
on failure also ``error`` (``invalid``: undecodable, nothing kept; ``unavailable``: the
database stayed locked or the disk failed, retry; ``internal``) and ``message``."""


@dataclass(eq=False)
class Request:
    id: int
    signal: str
    payload: bytes
    encoding: str = "protobuf"


@dataclass
class Inbox:
    """Requests waiting for the writer loop; ``close()`` lets it drain and return."""

    _items: deque[Request] = field(default_factory=deque)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False

    def put(self, request: Request) -> None:
        with self._cond:
            self._items.append(request)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def take(self, max_bytes: int) -> list[Request]:
        """Block for work; return the oldest requests up to ``max_bytes`` ([] once closed
        and empty)."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            taken: list[Request] = []
            size = 0
            while self._items and (not taken or size + len(self._items[0].payload) <= max_bytes):
                taken.append(self._items.popleft())
                size += len(taken[-1].payload)
            return taken


def serve(store: SQLiteStore, inbox: Inbox, answer: Callable[[int, Reply], None]) -> None:
    """Commit and answer until the inbox is closed and drained.

    One thread, one group at a time. Preparing the next group on a second thread while
    this one commits was measured slower: the threads compete for the GIL, SQLite's
    inserts release it on every row and wait to get it back, and so the commit, with the
    project's lock held (which serialises all writers), took 2-3x as long. Writers overlap
    across processes instead: while one commits, the others prepare."""
    while requests := inbox.take(MAX_COMMIT_BYTES):
        for request, reply in write(store, requests):
            answer(request.id, reply)


def write(store: SQLiteStore, requests: list[Request]) -> list[tuple[Request, Reply]]:
    """Decode every request and commit them together, one transaction per project. If that
    fails, write them one by one so a bad request cannot fail the others (writes are
    idempotent, so redoing a part already committed is safe)."""
    answered: list[tuple[Request, Reply]] = []
    decoded: list[tuple[Request, Batch]] = []
    for request in requests:
        message_type, translate = SIGNALS[request.signal]
        try:
            message = decode(request, message_type)
            if request.signal == "metrics":  # points carry no images
                batch = translate(message)
            else:  # one scan of the request's bytes spares one per attribute, mostly
                batch = translate(message, images=media.may_hold_images(request.payload))
            store.media_quota.admit(batch)
        except DecodeError as exc:
            name = f"{message_type.DESCRIPTOR.name} ({request.encoding})"
            answered.append((request, _reply(None, "invalid", f"could not decode {name}: {exc}")))
        except Exception as exc:
            message = f"could not translate: {type(exc).__name__}: {exc}"
            answered.append((request, _reply(None, "internal", message)))
        else:
            decoded.append((request, batch))
    merged = Batch()
    for _, batch in decoded:
        merged.extend(batch)
    try:
        store.write(merged)
    except Exception as exc:
        if len(decoded) == 1:
            request, batch = decoded[0]
            return [*answered, (request, _failure(exc, batch))]
        return [*answered, *(_write_alone(store, r, b) for r, b in decoded)]
    return [*answered, *((r, _reply(b)) for r, b in decoded)]


def decode(request: Request, message_type: type[Message]) -> Message:
    if request.encoding == "json":
        return otlp_json.parse(request.payload, message_type)
    return message_type.FromString(request.payload)


def _write_alone(store: SQLiteStore, request: Request, batch: Batch) -> tuple[Request, Reply]:
    try:
        store.write(batch)
    except Exception as exc:
        return request, _failure(exc, batch)
    return request, _reply(batch)


def _failure(exc: Exception, batch: Batch) -> Reply:
    log.warning("could not commit a request of %d records: %s", batch.size, exc)
    if isinstance(exc, Unavailable):
        return _reply(batch, "unavailable", f"could not commit, retry: {exc}")
    return _reply(batch, "internal", f"could not store: {type(exc).__name__}: {exc}")


def _reply(batch: Batch | None, error: str | None = None, message: str = "") -> Reply:
    reply: Reply = {
        "records": batch.size if batch else 0,
        "rejected": batch.rejected if batch else 0,
        "errors": batch.errors if batch else [],
    }
    if error:
        reply.update(error=error, message=message)
    return reply
