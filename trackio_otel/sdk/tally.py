"""What this process's exporters delivered, per destination: the line ``trackio-otel run``
prints at exit (``REPORT_ENV`` names the directory where each instrumented process, the
program and any Python it starts, writes ``<pid>.json``).

Counted only on SUCCESS, so the line says what the destination accepted. Distinct trace
ids are remembered only when a report was asked for (a set grows with the run).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPORT_ENV = "TRACKIO_OTEL_REPORT"


@dataclass
class Counts:
    spans: int = 0
    logs: int = 0
    points: int | None = None
    """None: this destination's metric exporter is not one of ours, so nobody counts."""
    traces: set[int] = field(default_factory=set)


_lock = threading.Lock()
_counts: dict[str, Counts] = {}
_track_traces = bool(os.environ.get(REPORT_ENV))


def _at(destination: str) -> Counts:
    return _counts.setdefault(destination, Counts())


def spans(destination: str, batch: Iterable[Any]) -> None:
    batch = list(batch)
    with _lock:
        counts = _at(destination)
        counts.spans += len(batch)
        if _track_traces:
            counts.traces.update(s.context.trace_id for s in batch)


def logs(destination: str, batch: Iterable[Any]) -> None:
    with _lock:
        _at(destination).logs += sum(1 for _ in batch)


def points(destination: str, data: Any) -> None:
    n = sum(
        len(m.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    )
    with _lock:
        counts = _at(destination)
        counts.points = (counts.points or 0) + n


def counts_points(destination: str) -> None:
    """Metric points delivered to ``destination`` are counted (0 until some are)."""
    with _lock:
        counts = _at(destination)
        counts.points = counts.points or 0


def snapshot() -> dict[str, dict[str, int]]:
    with _lock:
        return {
            where: {"spans": c.spans, "traces": len(c.traces), "logs": c.logs, "points": c.points}
            for where, c in _counts.items()
        }


def write_report(**extra: Any) -> None:
    """This process's counts (and ``extra``) into its report file, if one was asked for."""
    folder = os.environ.get(REPORT_ENV)
    if not folder:
        return
    path = Path(folder) / f"{os.getpid()}.json"
    report = _read(path)
    report.update(extra, delivered=snapshot())
    path.write_text(json.dumps(report))


def read_reports(folder: Path) -> dict[str, Any]:
    """Every process's report merged: instrumentor outcomes together, counts summed."""
    merged: dict[str, Any] = {"loaded": [], "failed": {}, "delivered": {}}
    for path in sorted(folder.glob("*.json")):
        report = _read(path)
        merged["started"] = merged.get("started") or report.get("started", False)
        merged["loaded"] = sorted({*merged["loaded"], *report.get("loaded", [])})
        merged["failed"].update(report.get("failed", {}))
        for where, counts in report.get("delivered", {}).items():
            total = merged["delivered"].setdefault(where, dict.fromkeys(counts, None))
            for key, value in counts.items():
                if value is not None:
                    total[key] = (total.get(key) or 0) + value
    return merged


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
