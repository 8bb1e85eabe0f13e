"""trackio-otel: OpenTelemetry in, Trackio out.

``trackio_otel.init(project=...)`` starts a run (see ``trackio_otel.sdk``); the SDK is
imported on first use so the collector CLI does not pay for it.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Rollout", "Run", "Step", "TrackioCallback", "init"]


def __getattr__(name: str) -> Any:
    if name == "TrackioCallback":  # imports transformers
        from trackio_otel.integrations.transformers import TrackioCallback

        return TrackioCallback
    if name in __all__:
        from trackio_otel import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'trackio_otel' has no attribute {name!r}")
