"""Hostile input found by fuzzing and probing (issue 10 §4): each answered OK, partial success
naming the field, or INVALID_ARGUMENT; never INTERNAL; never blocking other data.

Each test sends through a real collector on 127.0.0.1 and reads back through Trackio's own
reader or the database it wrote.
"""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from tests.conftest import traces_of
from tests.test_collector_robustness import (
    assert_still_serving,
    new_span,
    send_raw,
    trace_request,
)


def export(endpoint: str, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse:
    response, _ = send_raw(endpoint, request.SerializeToString())
    return ExportTraceServiceResponse.FromString(response)


def trackio_spans(project: str) -> dict[str, str | None]:
    """Span name → parent span name, as Trackio's reader shows the project's only trace."""
    (trace,) = traces_of(project)
    names = {s["id"]: s["name"] for s in trace["spans"]}
    return {s["name"]: names.get(s["parent_id"]) for s in trace["spans"]}


# --- Parent cycles ------------------------------------------------------------------------
def test_a_span_that_is_its_own_parent_is_a_root(endpoint, project, trackio_dir):
    loop = new_span("loop")
    loop.parent_span_id = loop.span_id
    child = new_span("child", trace=loop.trace_id, parent=loop.span_id)
    assert export(endpoint, trace_request(project, loop, child)) == ExportTraceServiceResponse()
    assert trackio_spans(project) == {"loop": None, "child": "loop"}
    assert_still_serving(endpoint, project, trackio_dir)


def cycle(n: int) -> list[PbSpan]:
    """``n`` spans of one trace, each the parent of the next, the last the parent of the first."""
    spans = [new_span(f"c{i}") for i in range(n)]
    for i, s in enumerate(spans):
        s.trace_id = spans[0].trace_id
        s.parent_span_id = spans[i - 1].span_id
    return spans


def test_a_parent_cycle_is_broken_at_its_earliest_span(endpoint, project, trackio_dir):
    spans = cycle(3)
    assert export(endpoint, trace_request(project, *spans)) == ExportTraceServiceResponse()
    assert trackio_spans(project) == {"c0": None, "c1": "c0", "c2": "c1"}
    assert_still_serving(endpoint, project, trackio_dir)


def test_a_cycle_formed_across_requests_gives_the_same_trace_in_any_order(endpoint):
    shown = []
    spans = cycle(2)
    for order in (spans, spans[::-1]):
        project = f"t-cycle-{len(shown)}"
        for s in order:
            assert export(endpoint, trace_request(project, s)) == ExportTraceServiceResponse()
        (trace,) = traces_of(project)
        shown.append([(s["id"], s["parent_id"]) for s in trace["spans"]])
    assert shown[0] == shown[1]
    assert shown[0] == [
        (spans[0].span_id.hex(), None),
        (spans[1].span_id.hex(), spans[0].span_id.hex()),
    ]
