"""Records that flow from translation to the store: one shape for both entrances.

Translators build a ``Batch`` from one OTLP request; the store writes a batch in one
transaction. Every record carries an idempotency key so a retried request never
duplicates a row.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Run:
    """A Trackio run, derived from a resource (see ``identity.run_for``)."""

    project: str
    run_id: str
    run_name: str
    group: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    service: str | None = None
    """The resource's ``service.name`` (trace metadata users filter on)."""


@dataclass(slots=True)
class Resource:
    """An OTel resource, stored once in ``otel_resources`` and referenced by ``id``."""

    id: str
    attributes: dict[str, Any]
    schema_url: str


@dataclass(slots=True)
class Span:
    run: Run
    resource_id: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]
    scope_name: str
    scope_version: str
    trace_state: str = ""


@dataclass(slots=True)
class Log:
    uid: str
    run: Run
    resource_id: str
    time_ns: int
    observed_ns: int
    severity_number: int
    severity_text: str
    event_name: str
    body: Any
    attributes: dict[str, Any]
    trace_id: str | None
    span_id: str | None
    scope_name: str
    scope_version: str


@dataclass(slots=True)
class Point:
    """One metric data point, kept whole for SQL."""

    uid: str
    run: Run
    resource_id: str
    name: str
    description: str
    unit: str
    type: str
    temporality: int
    is_monotonic: bool
    attributes: dict[str, Any]
    start_ns: int
    time_ns: int
    value: float | None
    count: int | None = None
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    buckets: dict[str, Any] | None = None
    scope_name: str = ""
    scope_version: str = ""


@dataclass(slots=True)
class Scalars:
    """A Trackio ``metrics`` row (``step`` set) or ``system_metrics`` row (``step`` None)."""

    log_id: str
    run: Run
    time_ns: int
    values: dict[str, Any]
    step: int | None = None


@dataclass(slots=True)
class MediaClaim:
    """The inline images a span or log carries, counted against the project's media quota
    by the writer before the record is stored (see ``conventions.media.admit``)."""

    where: str
    record: Span | Log
    images: list[tuple[str, int]]
    """(which image, as partial success names it; its decoded bytes)."""


@dataclass(slots=True)
class Batch:
    resources: dict[str, Resource] = field(default_factory=dict)
    spans: list[Span] = field(default_factory=list)
    logs: list[Log] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    scalars: list[Scalars] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    media: list[MediaClaim] = field(default_factory=list)
    media_bytes: int = 0
    """Decoded bytes of the inline images in ``media`` (the request's, for its limit)."""

    def reject(self, where: str, why: str, count: int = 1) -> None:
        """``count`` items at ``where`` are not stored, for one reason."""
        self.rejected += count
        self.warn(where, why)

    def fail(self, where: str, exc: Exception) -> None:
        """Translating one item raised: reject that item, naming the error, instead of
        failing the whole request (and every retry of it). Still a bug, so it is logged
        with its traceback."""
        log.error("could not translate %s", where, exc_info=exc)
        self.reject(where, f"could not be translated ({type(exc).__name__}: {exc})")

    def warn(self, where: str, why: str) -> None:
        """Report a problem with kept data (OTLP partial success with nothing rejected)."""
        if len(self.errors) < 10:  # the message names the first few; the count is exact
            self.errors.append(f"{where}: {why}")

    @property
    def size(self) -> int:
        return len(self.spans) + len(self.logs) + len(self.points)

    def by_project(self) -> dict[str, Batch]:
        """Split into one batch per project (= per database file)."""
        parts: dict[str, Batch] = defaultdict(Batch)
        for kind in ("spans", "logs", "points", "scalars"):
            for record in getattr(self, kind):
                part = parts[record.run.project]
                getattr(part, kind).append(record)
                if kind != "scalars":
                    part.resources[record.resource_id] = self.resources[record.resource_id]
        return dict(parts)

    def extend(self, other: Batch) -> None:
        self.resources.update(other.resources)
        self.spans += other.spans
        self.logs += other.logs
        self.points += other.points
        self.scalars += other.scalars
