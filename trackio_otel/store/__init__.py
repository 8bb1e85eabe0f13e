"""Stores: where rows are committed. ``sqlite`` writes Trackio's own database.

A store knows tables, keys, transactions and locks, and no OpenTelemetry convention: what
the rows hold is decided upstream (``trackio_otel.rows``), which hands the store one
``Write`` per project. This module stays light (no SQLAlchemy) because processes that
never open a database import it: the collector's receiver and the training process that
runs the SDK.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Row = dict[str, Any]


@dataclass(slots=True)
class RunRow:
    """A run to make known to Trackio: its ``configs`` row and first ``metrics`` row."""

    run_id: str
    run_name: str
    group: str | None
    config: dict[str, Any]
    created: str


@dataclass
class Write:
    """One project's share of a batch, committed in one transaction: first ``rows``
    (table → rows; a row whose key is already stored is left as it is), the ``runs``, then
    ``then(tx, conflicts)`` with the span rows that met a stored span of other content."""

    project: str
    rows: dict[str, list[Row]] = field(default_factory=dict)
    runs: list[RunRow] = field(default_factory=list)
    then: Callable[[Any, list[Row]], None] | None = None


class Unavailable(Exception):
    """The database could not be written now (locked past the timeout, disk full or
    failing): nothing of the batch was committed, and the same batch may be retried."""


def default_trackio_dir() -> Path:
    """Trackio's own resolution: ``TRACKIO_DIR``, else ``$HF_HOME/trackio``, else the HF cache."""
    if os.environ.get("TRACKIO_DIR"):
        return Path(os.environ["TRACKIO_DIR"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(hf_home) / "trackio"
