"""The SDK's one warn-once rule (``sdk.failopen.warn_once``): a problem that recurs on every
batch is logged the first time only, and a different problem still gets its line."""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.test_collector_robustness import wait_until
from trackio_otel import semconv
from trackio_otel.sdk.exporter import EmbeddedSpanExporter


def test_a_problem_on_every_batch_is_logged_once_and_another_still_is(project, caplog):
    exporter = EmbeddedSpanExporter(identity={semconv.PROJECT: project})
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("warn-once")
    with caplog.at_level(logging.WARNING, logger="trackio_otel.sdk"):
        for value in (True, True, True, 12.5):  # one problem on three batches, then another
            tracer.start_span("s", attributes={semconv.STEP: value}).end()
            assert exporter.force_flush()
        provider.shutdown()

        def told() -> list[str]:
            return [r.getMessage() for r in caplog.records if "telemetry problem" in r.getMessage()]

        # A write's problems are logged by its future's callback, which may run just after
        # the flush that waited on the future returned.
        wait_until(lambda: len(told()) >= 2, "the second problem to be logged", limit_s=10)
    told = told()
    assert len(told) == 2, told
    assert "not the bool True" in told[0]
    assert "not 12.5" in told[1]
