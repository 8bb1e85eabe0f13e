"""Table definitions: Trackio 0.43's own tables, and the raw ``otel_*`` tables.

Trackio's tables, columns and index names match its ``init_db`` exactly, so Trackio's
idempotent DDL finds nothing to change and ``PRAGMA user_version`` 2 means nothing to
migrate. The ``otel_*`` tables keep every span, log record and data point with all
attributes, for SQL; JSON columns are compact JSON text. ``otel_spans.view`` is each
span's contribution to its Trackio trace (``rows.views``), and ``otel_trace_state`` the
bookkeeping of incremental trace assembly.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)

TRACKIO_SCHEMA_VERSION = 2
metadata = MetaData()


def _id() -> Column:
    # Trackio's DDL declares primary keys without NOT NULL; match it column for column.
    return Column("id", Integer, primary_key=True, nullable=True)


def _pending_and_log_id(table: str) -> list[Index]:
    return [
        Index(
            f"idx_{table}_log_id", "log_id", unique=True, sqlite_where=text("log_id IS NOT NULL")
        ),
        Index(f"idx_{table}_pending", "space_id", sqlite_where=text("space_id IS NOT NULL")),
    ]


# --- Trackio's tables ----------------------------------------------------------------------
metrics = Table(
    "metrics",
    metadata,
    _id(),
    Column("run_id", Text, nullable=False),
    Column("timestamp", Text, nullable=False),
    Column("run_name", Text, nullable=False),
    Column("step", Integer, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("log_id", Text),
    Column("space_id", Text),
    Index("idx_metrics_run_step", "run_id", "step"),
    Index("idx_metrics_run_timestamp", "run_id", "timestamp"),
    Index("idx_metrics_run_record", "run_id", "run_name", "timestamp"),
    *_pending_and_log_id("metrics"),
    sqlite_autoincrement=True,
)
configs = Table(
    "configs",
    metadata,
    _id(),
    Column("run_id", Text, nullable=False),
    Column("run_name", Text, nullable=False),
    Column("config", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    UniqueConstraint("run_id"),
    Index("idx_configs_run_name", "run_name"),
    sqlite_autoincrement=True,
)
system_metrics = Table(
    "system_metrics",
    metadata,
    _id(),
    Column("run_id", Text, nullable=False),
    Column("timestamp", Text, nullable=False),
    Column("run_name", Text, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("log_id", Text),
    Column("space_id", Text),
    Index("idx_system_metrics_run_timestamp", "run_id", "timestamp"),
    *_pending_and_log_id("system_metrics"),
    sqlite_autoincrement=True,
)
traces = Table(
    "traces",
    metadata,
    Column("id", Text, primary_key=True, nullable=True),
    Column("run_id", Text, nullable=False),
    Column("timestamp", Text, nullable=False),
    Column("run_name", Text, nullable=False),
    Column("step", Integer, nullable=False),
    Column("key", Text, nullable=False),
    Column("trace_index", Integer),
    Column("messages", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("search_text", Text, nullable=False),
    Column("log_id", Text),
    Column("space_id", Text),
    Column("spans", Text, nullable=False, server_default=text("'[]'")),
    Index("idx_traces_run_step", "run_id", "step"),
    Index("idx_traces_run_timestamp", "run_id", "timestamp"),
    Index("idx_traces_search", "search_text"),
)
project_metadata = Table(
    "project_metadata",
    metadata,
    Column("key", Text, primary_key=True, nullable=True),
    Column("value", Text, nullable=False),
)
pending_uploads = Table(
    "pending_uploads",
    metadata,
    _id(),
    Column("space_id", Text, nullable=False),
    Column("run_id", Text),
    Column("run_name", Text),
    Column("step", Integer),
    Column("file_path", Text, nullable=False),
    Column("relative_path", Text),
    Column("created_at", Text, nullable=False),
    Column("kind", Text, nullable=False, server_default=text("'media'")),
    Column("digest", Text),
    Index("idx_pending_uploads_kind", "kind"),
    sqlite_autoincrement=True,
)
alerts = Table(
    "alerts",
    metadata,
    _id(),
    Column("run_id", Text, nullable=False),
    Column("timestamp", Text, nullable=False),
    Column("run_name", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("text", Text),
    Column("level", Text, nullable=False, server_default=text("'warn'")),
    Column("step", Integer),
    Column("alert_id", Text),
    Index("idx_alerts_run", "run_id"),
    Index("idx_alerts_timestamp", "timestamp"),
    Index(
        "idx_alerts_alert_id", "alert_id", unique=True, sqlite_where=text("alert_id IS NOT NULL")
    ),
    sqlite_autoincrement=True,
)


# --- Raw OpenTelemetry tables ---------------------------------------------------------------
def _origin() -> list[Column]:
    """Columns every raw record has: where it came from and which run it went to."""
    return [
        Column("scope_name", Text),
        Column("scope_version", Text),
        Column("resource_id", Text, nullable=False),
        Column("run_id", Text, nullable=False),
        Column("run_name", Text, nullable=False),
    ]


otel_resources = Table(
    "otel_resources",
    metadata,
    Column("resource_id", Text, primary_key=True),
    Column("attributes", Text, nullable=False),
    Column("schema_url", Text),
)
otel_spans = Table(
    "otel_spans",
    metadata,
    Column("trace_id", Text, nullable=False),
    Column("span_id", Text, nullable=False),
    Column("parent_span_id", Text),
    Column("name", Text, nullable=False),
    Column("kind", Integer, nullable=False),
    Column("start_time_unix_nano", Integer, nullable=False),
    Column("end_time_unix_nano", Integer, nullable=False),
    Column("start_time", Text),
    Column("duration_ms", Float),
    Column("status_code", Integer, nullable=False),
    Column("status_message", Text),
    Column("attributes", Text, nullable=False),
    Column("events", Text, nullable=False),
    Column("links", Text, nullable=False),
    Column("trace_state", Text),
    *_origin(),
    Column("view", Text, nullable=False),
    PrimaryKeyConstraint("trace_id", "run_id", "span_id"),
    Index("idx_otel_spans_run_start", "run_id", "start_time_unix_nano"),
)
SPAN_KEY = ("trace_id", "run_id", "span_id")
"""A span's key: ``trace_id`` first, so a query by trace id alone uses it too."""
SPAN_CONTENT = tuple(
    c.name for c in otel_spans.columns if c.name not in ("view", "start_time", "duration_ms")
)
"""What makes two spans under one key the same span (``view`` and the derived columns
follow from these)."""
otel_trace_state = Table(
    "otel_trace_state",
    metadata,
    Column("run_id", Text, nullable=False),
    Column("trace_id", Text, nullable=False),
    Column("run_name", Text, nullable=False),
    Column("spans", Integer, nullable=False),
    Column("built", Integer, nullable=False),
    Column("root", Boolean, nullable=False),
    Column("dirty", Boolean, nullable=False),
    PrimaryKeyConstraint("trace_id", "run_id"),
    Index("idx_otel_trace_state_dirty", "run_id", sqlite_where=text("dirty")),
)
"""Per trace of a run: its stored spans, how many its Trackio row was last built from,
whether its root arrived, and whether the row lags behind its spans (see ``rows``)."""
otel_logs = Table(
    "otel_logs",
    metadata,
    Column("log_uid", Text, primary_key=True),
    Column("time_unix_nano", Integer, nullable=False),
    Column("observed_time_unix_nano", Integer, nullable=False),
    Column("timestamp", Text, nullable=False),
    Column("severity_number", Integer),
    Column("severity_text", Text),
    Column("event_name", Text),
    Column("body", Text),
    Column("attributes", Text, nullable=False),
    Column("trace_id", Text),
    Column("span_id", Text),
    *_origin(),
    Index("idx_otel_logs_trace", "trace_id", "run_id", "span_id"),
    Index("idx_otel_logs_run_time", "run_id", "timestamp"),
)
otel_metric_points = Table(
    "otel_metric_points",
    metadata,
    Column("point_uid", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("description", Text),
    Column("unit", Text),
    Column("type", Text, nullable=False),
    Column("temporality", Integer),
    Column("is_monotonic", Boolean),
    Column("attributes", Text, nullable=False),
    Column("start_time_unix_nano", Integer),
    Column("time_unix_nano", Integer, nullable=False),
    Column("timestamp", Text, nullable=False),
    Column("value", Float),
    Column("count", Integer),
    Column("sum", Float),
    Column("min", Float),
    Column("max", Float),
    Column("buckets", Text),
    *_origin(),
    Index("idx_otel_metric_points_name_time", "name", "time_unix_nano"),
    Index("idx_otel_metric_points_run_time", "run_id", "time_unix_nano"),
)
