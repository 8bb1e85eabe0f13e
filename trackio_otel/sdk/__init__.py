"""The trackio-otel SDK: runs, steps, rollouts and telemetry as OpenTelemetry signals."""

from trackio_otel.sdk.exporter import (
    EmbeddedLogExporter,
    EmbeddedMetricExporter,
    EmbeddedSpanExporter,
)
from trackio_otel.sdk.rollout import Rollout
from trackio_otel.sdk.run import Run, init
from trackio_otel.sdk.steps import Phase, Step

__all__ = [
    "EmbeddedLogExporter",
    "EmbeddedMetricExporter",
    "EmbeddedSpanExporter",
    "Phase",
    "Rollout",
    "Run",
    "Step",
    "init",
]
