"""trackio-otel: OpenTelemetry in, Trackio out."""

__version__ = "0.1.0"
