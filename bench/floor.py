"""The floor any OTLP-to-SQLite store must do, which the benchmarks measure against in the
same run: decode the request, translate its spans, insert one plain row per span with
``executemany``, commit. One thread, no conventions, no Trackio rows."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trackio_otel.translate import spans as translate_spans


def open_db(path: Path) -> sqlite3.Connection:
    """A database set up as the collector's (WAL, synchronous NORMAL), with one table."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(
        "CREATE TABLE spans (trace_id TEXT, span_id TEXT, parent_span_id TEXT, name TEXT, "
        "start_ns INTEGER, end_ns INTEGER, attributes TEXT, PRIMARY KEY (trace_id, span_id))"
    )
    return db


def write(db: sqlite3.Connection, payload: bytes) -> int:
    """Store one serialized ExportTraceServiceRequest in one transaction; its span count."""
    batch = translate_spans.from_request(ExportTraceServiceRequest.FromString(payload))
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                s.trace_id,
                s.span_id,
                s.parent_span_id,
                s.name,
                s.start_ns,
                s.end_ns,
                json.dumps(s.attributes, separators=(",", ":"), ensure_ascii=False),
            )
            for s in batch.spans
        ],
    )
    db.execute("COMMIT")
    return len(batch.spans)
