"""Beside an app that configured OpenTelemetry itself: the run joins its providers.

Runs in a subprocess, because OTel's global providers can be set once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import only_run, traces_of

APP = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    mine = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "the-app"}))
    provider.add_span_processor(SimpleSpanProcessor(mine))
    trace.set_tracer_provider(provider)

    import trackio_otel

    run = trackio_otel.init(project=sys.argv[1], name="joined", gpu=False)
    assert trace.get_tracer_provider() is provider
    with trace.get_tracer("app").start_as_current_span("app.request", attributes={"k": 1}):
        with run.rollout(step=2) as r:
            r.generation(model="m", input=[{"role": "user", "content": "hi"}], output="hello")
    run.finish()
    spans = mine.get_finished_spans()
    print(json.dumps([{"name": s.name, "attributes": dict(s.attributes),
                       "resource": dict(s.resource.attributes)} for s in spans]))
    """
)


def test_joins_the_apps_tracer_provider(trackio_dir, project):
    env = {**os.environ, "TRACKIO_DIR": str(trackio_dir)}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    done = subprocess.run(
        [sys.executable, "-c", APP, project],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = {s["name"]: s for s in json.loads(done.stdout.splitlines()[-1])}
    # the app's own exporter still gets everything, the SDK's spans tagged with the run
    assert seen["app.request"]["resource"]["service.name"] == "the-app"
    assert seen["trackio.rollout"]["attributes"]["trackio.project"] == project
    assert seen["trackio.rollout"]["attributes"]["trackio.run.name"] == "joined"

    run = only_run(project)  # and the app's spans land in the run despite the app's resource
    assert run["name"] == "joined"
    keys = {t["key"]: t for t in traces_of(project, run)}
    assert set(keys) == {"app.request", "rollout"}
    assert keys["rollout"]["step"] == 2
    assert [m["role"] for m in keys["rollout"]["messages"]] == ["user", "assistant"]
