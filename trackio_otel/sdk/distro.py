"""trackio-otel as an OpenTelemetry distro: ``opentelemetry-instrument python app.py``, with
no flags, lands the app in Trackio.

``opentelemetry-instrument`` runs the first ``opentelemetry_distro`` entry point (or the
one ``OTEL_PYTHON_DISTRO`` names), then the first ``opentelemetry_configurator`` (or
``OTEL_PYTHON_CONFIGURATOR``'s), which builds the SDK from the ``OTEL_*`` variables. Ours
only fills in the variables the user left unset: each signal's exporter is ``trackio``
(the embedded store, no server) unless an OTLP endpoint is configured, then ``otlp``; the
id generator is ``trackio`` (``ids``: no seed repeats ids).

Beside another distro or configurator (``opentelemetry-distro``, a vendor's), entry point
order would decide which runs. So unless one of the two variables selects ``trackio``,
ours steps aside and runs the other, whichever order they come in: installing
trackio-otel never changes what another distro does. ``trackio-otel run`` selects ours.

In a ``trackio-otel run`` child (``tally.REPORT_ENV`` set) the distro also records which
instrumentors loaded or failed and why (``opentelemetry-instrument`` logs an instrumentor
that fails with ``ModuleNotFoundError`` at debug level only), and the configurator counts
what the exporters delivered, for the line printed at exit.
"""

from __future__ import annotations

import atexit
import os
import sys
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from trackio_otel.sdk import tally

NAME = "trackio"
SIGNALS = {"TRACES": "OTEL_TRACES_EXPORTER", "METRICS": "OTEL_METRICS_EXPORTER"}
SIGNALS["LOGS"] = "OTEL_LOGS_EXPORTER"

_instrumentors: dict[str, str] = {}
"""``_label`` → "loaded" or why it failed (this process's auto-instrumentation)."""


def _label(ep: EntryPoint) -> str:
    """``openai (opentelemetry-instrumentation-openai-v2 2.4b0)``: several packages may
    register an instrumentor under one name."""
    dist = getattr(ep, "dist", None)
    return f"{ep.name} ({dist.name} {dist.version})" if dist is not None else ep.name


def defaults(env: dict[str, str] | os._Environ[str]) -> None:
    """The variables this distro sets when the user did not."""
    for signal, variable in SIGNALS.items():
        endpoint = env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT") or env.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        env.setdefault(variable, "otlp" if endpoint else NAME)
    env.setdefault("OTEL_PYTHON_ID_GENERATOR", NAME)


def _other(group: str, selector: str) -> EntryPoint | None:
    """Another package's entry point in ``group`` that should run instead of ours."""
    if os.environ.get(selector):  # chosen explicitly: the loader only runs ours if it is us
        return None
    return next((ep for ep in entry_points(group=group) if ep.name != NAME), None)


class TrackioDistro(BaseDistro):
    """The ``trackio`` distro (``OTEL_PYTHON_DISTRO=trackio`` selects it)."""

    _delegate: BaseDistro | None = None

    def _configure(self, **kwargs: Any) -> None:
        other = _other("opentelemetry_distro", "OTEL_PYTHON_DISTRO")
        if other is not None:
            self._delegate = other.load()()
            self._delegate.configure(**kwargs)
            return
        defaults(os.environ)

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:  # type: ignore[override]
        load = self._delegate.load_instrumentor if self._delegate else super().load_instrumentor
        try:
            load(entry_point, **kwargs)
        except Exception as exc:
            _instrumentors[_label(entry_point)] = f"{type(exc).__name__}: {exc}"
            raise
        _instrumentors[_label(entry_point)] = "loaded"


class TrackioConfigurator(_OTelSDKConfigurator):
    """The ``trackio`` configurator: the OTel SDK's own, from the ``OTEL_*`` variables."""

    def _configure(self, **kwargs: Any) -> None:
        other = _other("opentelemetry_configurator", "OTEL_PYTHON_CONFIGURATOR")
        if other is not None:
            other.load()().configure(**kwargs)
            return
        if os.environ.get(tally.REPORT_ENV):
            # registered before the providers' own exit hooks, so it runs after their flush
            atexit.register(tally.write_report)
            kwargs.setdefault("export_span_processor", _counted(BatchSpanProcessor, "spans"))
            kwargs.setdefault(
                "export_log_record_processor", _counted(BatchLogRecordProcessor, "logs")
            )
        super()._configure(**kwargs)


def _counted(processor: type, signal: str) -> Any:
    """A batch processor factory whose exporter's deliveries are tallied (the embedded
    exporters tally their own)."""

    def make(exporter: Any) -> Any:
        return processor(
            exporter if hasattr(exporter, "destination") else _Counted(exporter, signal)
        )

    return make


class _Counted:
    """Any span or log exporter, its successful exports tallied under its endpoint."""

    def __init__(self, inner: Any, signal: str) -> None:
        self._inner, self._signal = inner, signal
        variable = f"OTEL_EXPORTER_OTLP_{'TRACES' if signal == 'spans' else 'LOGS'}_ENDPOINT"
        endpoint = os.environ.get(variable) or os.environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317"
        )
        name = type(inner).__name__
        self.destination = f"OTLP {endpoint}" if "OTLP" in name else name

    def export(self, batch: Any) -> Any:
        result = self._inner.export(batch)
        if result in (SpanExportResult.SUCCESS, LogRecordExportResult.SUCCESS):
            (tally.spans if self._signal == "spans" else tally.logs)(self.destination, batch)
        return result

    def __getattr__(self, name: str) -> Any:  # shutdown, force_flush, ...
        return getattr(self._inner, name)


def report_instrumentors() -> None:
    """``opentelemetry_post_instrument`` hook: in a ``trackio-otel run`` child, say which
    instrumentors loaded, which failed and why, and which were skipped (their library
    missing or at a version they do not support)."""
    if not os.environ.get(tally.REPORT_ENV):
        return
    loaded = sorted(n for n, why in _instrumentors.items() if why == "loaded")
    failed = {n: why for n, why in _instrumentors.items() if why != "loaded"}
    absent, mismatched = [], {}
    for ep in entry_points(group="opentelemetry_instrumentor"):
        if _label(ep) in _instrumentors or getattr(ep, "dist", None) is None:
            continue
        conflict = get_dist_dependency_conflicts(ep.dist)
        if conflict is not None and (conflict.found or conflict.found_any):
            mismatched[_label(ep)] = str(conflict)
        else:
            absent.append(ep.name)
    print(f"trackio-otel: instrumented {', '.join(loaded) or 'nothing'}", file=sys.stderr)
    for name, why in {**failed, **mismatched}.items():
        print(f"trackio-otel: NOT instrumented {name}: {why}", file=sys.stderr)
    if absent:
        names = ", ".join(sorted(absent))
        print(f"trackio-otel: skipped (library not installed): {names}", file=sys.stderr)
    tally.write_report(
        started=True, loaded=loaded, failed={**failed, **mismatched}, skipped=sorted(absent)
    )
