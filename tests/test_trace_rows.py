"""Trace rows assembled incrementally converge, whatever the order, split and writer.

Each span's view is stored when it arrives and the row is merged from stored views, so a
trace sent span by span, in any order, through one store or two writer processes, must
end as the row it makes when sent whole; a long trace must land whole; seeded runs that
reuse trace and span ids must both land whole.
"""

from __future__ import annotations

import itertools
import json
import random
import sqlite3
from contextlib import closing
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from tests.conftest import AGENT_ROLES, load_fixture, local_config, traces_of
from tests.test_collector_robustness import new_span, wait_until
from tests.test_semconv import _kv
from trackio_otel import rows
from trackio_otel.rows import views as span_views
from trackio_otel.store.sqlite import SQLiteStore
from trackio_otel.translate import logs as translate_logs
from trackio_otel.translate import spans as translate_spans
from trackio_otel.translate.conventions import view
from trackio_otel.writer import WriterPool

ROW_COLUMNS = "key, messages, metadata, spans, search_text"
"""All of a row but its step: a trace without ``trackio.step`` takes the run's next trace
number when it first arrives, so steps follow the order traces arrive in."""
Record = tuple[str, bytes]
"""(signal, one OTLP request holding one span or one log record)."""


def single_records(traces: ExportTraceServiceRequest, logs: ExportLogsServiceRequest) -> list:
    """Every span and log record of the payloads as a request of its own."""
    out: list[Record] = []
    for rs in traces.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                request = ExportTraceServiceRequest()
                one = request.resource_spans.add(resource=rs.resource, schema_url=rs.schema_url)
                one.scope_spans.add(scope=ss.scope).spans.append(span)
                out.append(("traces", request.SerializeToString()))
    for rl in logs.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                request = ExportLogsServiceRequest()
                one = request.resource_logs.add(resource=rl.resource, schema_url=rl.schema_url)
                one.scope_logs.add(scope=sl.scope).log_records.append(record)
                out.append(("logs", request.SerializeToString()))
    return out


def write(store: SQLiteStore, record: Record) -> None:
    signal, payload = record
    if signal == "traces":
        batch = translate_spans.from_request(ExportTraceServiceRequest.FromString(payload))
    else:
        batch = translate_logs.from_request(ExportLogsServiceRequest.FromString(payload))
    rows.write(store, batch)


def trace_rows(trackio_dir: Path, project: str) -> dict[str, tuple]:
    """Every Trackio trace row of the project, by OTel trace id."""
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as db:
        found = db.execute(
            f"SELECT json_extract(metadata, '$.trace_id'), {ROW_COLUMNS} FROM traces"
        ).fetchall()
    return {r[0]: r[1:] for r in found}


@pytest.fixture
def store(trackio_dir: Path):
    s = SQLiteStore(trackio_dir)
    yield s
    s.close()


@pytest.mark.parametrize("fixture", ["new_span_only", "legacy_content_true"])
def test_every_arrival_order_of_an_agent_trace_gives_the_row_it_gives_whole(
    trackio_dir, store, fixture
):
    """All 24 orders of the agent trace's 4 spans, one span per request; the GenAI log
    events of ``legacy_content_true`` (content in per-message events) come before, between
    or after the spans."""
    whole_project = f"whole-{fixture}"
    traces, logs = load_fixture(fixture, whole_project)
    rows.write(store, translate_logs.from_request(logs))
    rows.write(store, translate_spans.from_request(traces))
    expected = trace_rows(trackio_dir, whole_project)
    agent = next(t for t, row in expected.items() if row[0] == "invoke_agent WeatherBot")
    assert [m["role"] for m in json.loads(expected[agent][1])] == AGENT_ROLES

    for n, order in enumerate(itertools.permutations(range(4))):
        project = f"order-{fixture}-{n}"
        traces, logs = load_fixture(fixture, project)
        records = single_records(traces, logs)
        agent_spans = [r for r in records if r[0] == "traces" and agent in _trace_of(r)]
        others = [r for r in records if r not in agent_spans]
        sequence = [agent_spans[i] for i in order]
        random.Random(n).shuffle(others)  # the other traces and every log event, anywhere
        for i, record in enumerate(others):
            sequence.insert(random.Random(n * 31 + i).randint(0, len(sequence)), record)
        for record in sequence:
            write(store, record)
        assert trace_rows(trackio_dir, project) == expected, order
        assert whole_views(trackio_dir, project) == [], order


def whole_views(trackio_dir: Path, project: str) -> list[str]:
    """Names of the spans whose stored view still holds its input, output and metadata:
    once a trace's row holds a span as it was made, its view reads them from the row."""
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as db:
        found = db.execute("SELECT name, view FROM otel_spans").fetchall()
    return [name for name, raw in found if not span_views.is_thin(raw)]


def _trace_of(record: Record) -> str:
    request = ExportTraceServiceRequest.FromString(record[1])
    return request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()


def test_two_writer_processes_given_single_spans_at_once_converge(trackio_dir, store):
    """Every span and log event of a payload submitted at once to two writer processes
    (so they prepare and commit parts of the same traces concurrently), in six orders."""
    whole_project = "whole-two-writers"
    traces, logs = load_fixture("legacy_content_true", whole_project)
    rows.write(store, translate_spans.from_request(traces))
    rows.write(store, translate_logs.from_request(logs))
    expected = trace_rows(trackio_dir, whole_project)
    pool = WriterPool(trackio_dir, processes=2).start()
    try:
        for n in range(6):
            project = f"two-writers-{n}"
            records = single_records(*load_fixture("legacy_content_true", project))
            random.Random(n).shuffle(records)
            for future in [pool.submit(signal, payload) for signal, payload in records]:
                assert future.result(timeout=60).rejected == 0
            assert trace_rows(trackio_dir, project) == expected, n
            assert whole_views(trackio_dir, project) == [], n
    finally:
        pool.close()


@pytest.mark.parametrize("root_first", [True, False])
def test_service_name_does_not_depend_on_arrival_order(trackio_dir, store, project, root_first):
    """A span already stored keeps the service it arrived with (it used to come back from
    the database with none, so child-then-root and root-then-child disagreed)."""
    root = new_span("root")
    child = new_span("child", trace=root.trace_id, parent=root.span_id)
    for span in [root, child] if root_first else [child, root]:
        request = ExportTraceServiceRequest()
        rs = request.resource_spans.add()
        for key, value in {"trackio.project": project, "service.name": "svc-a"}.items():
            rs.resource.attributes.add(key=key).value.string_value = value
        rs.scope_spans.add().spans.append(span)
        rows.write(store, translate_spans.from_request(request))
    (trace,) = traces_of(project)
    assert trace["metadata"]["service_name"] == "svc-a"
    assert len(trace["spans"]) == 2


def _request(project: str, spans: list[PbSpan], run: str = "long") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    for key, value in {"trackio.project": project, "trackio.run.name": run}.items():
        rs.resource.attributes.add(key=key).value.string_value = value
    rs.scope_spans.add().spans.extend(spans)
    return request


def long_trace(n: int, *, rooted: bool = True) -> list[PbSpan]:
    """A root and ``n - 1`` children (children first, the root last, as they end), or,
    not ``rooted``, ``n`` spans whose parent was never sent."""
    root = new_span("session")
    parent = root.span_id if rooted else b"\x07" * 8
    kids = [new_span(f"step {i}", trace=root.trace_id, parent=parent) for i in range(n - 1)]
    return (
        [*kids, root] if rooted else [*kids, new_span("last", trace=root.trace_id, parent=parent)]
    )


def test_a_long_trace_sent_a_few_spans_at_a_time_lands_as_one_whole_trace(
    trackio_dir, store, project
):
    """Its row is merged a dozen times, each from the views stored thin at the previous
    merge and read back from that row: it ends as the row of the trace sent whole."""
    spans = long_trace(2000)
    for i in range(0, len(spans), 8):
        rows.write(store, translate_spans.from_request(_request(project, spans[i : i + 8])))
    (trace,) = traces_of(project)
    assert len(trace["spans"]) == 2000
    assert trace["key"] == "session"
    assert [s["parent_id"] for s in trace["spans"]].count(None) == 1
    assert trace["metadata"]["span_count"] == 2000
    assert whole_views(trackio_dir, project) == []
    rows.write(store, translate_spans.from_request(_request(f"{project}-whole", spans)))
    assert trace_rows(trackio_dir, project) == trace_rows(trackio_dir, f"{project}-whole")


def test_a_long_trace_without_its_root_lags_then_settles_when_the_writer_is_idle(
    trackio_dir, project
):
    """Past ``SMALL_TRACE`` a rootless trace is merged only as it grows by a quarter; the
    collector's idle writer brings the row up to date."""
    spans = long_trace(290, rooted=False)  # last merged at 240: 290 < 240 * GROWTH
    config_dir = trackio_dir
    from trackio_otel.collector import Collector

    config = local_config(config_dir, http_endpoint=None, writers=1)
    with Collector(config) as collector:
        with grpc.insecure_channel(f"127.0.0.1:{collector.port}") as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            for i in range(0, len(spans), 8):
                stub.Export(_request(project, spans[i : i + 8]), timeout=30)
        wait_until(
            lambda: len(traces_of(project)[0]["spans"]) == 290, "the lagging row to settle", 10
        )


def test_seeded_runs_that_reuse_every_id_both_land_whole(trackio_dir, store, project):
    """Two runs whose trace and span ids are the same (both seeded the global ``random``
    the OTel SDK draws ids from): neither is taken for a retry of the other."""
    root = new_span("rollout")
    root.attributes.add(key="trackio.rollout.reward").value.double_value = 1.0
    child = new_span("generate", trace=root.trace_id, parent=root.span_id)
    for run in ("seed-0-a", "seed-0-b"):
        rows.write(store, translate_spans.from_request(_request(project, [child, root], run)))
    from trackio.sqlite_storage import SQLiteStorage

    runs = {r["name"]: r for r in SQLiteStorage.get_run_records(project)}
    assert set(runs) == {"seed-0-a", "seed-0-b"}
    for run in runs.values():
        (trace,) = traces_of(project, run)
        assert len(trace["spans"]) == 2
        logged = SQLiteStorage.get_logs(project, run["name"], run_id=run["id"])
        assert [r["rollout/reward"] for r in logged if "rollout/count" in r] == [1.0]
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as db:
        assert db.execute("SELECT COUNT(*) FROM otel_spans").fetchone() == (4,)


def test_a_span_reusing_a_stored_key_with_other_content_is_rejected_and_counted(
    endpoint, trackio_dir, project
):
    """Within a run, a second span under a stored span's ids is not silently dropped: the
    export's partial success counts it and names the ids; a retry of the stored span is
    answered as plain success and stored once."""
    first = new_span("first")
    impostor = PbSpan()
    impostor.CopyFrom(first)
    impostor.name = "other"
    with grpc.insecure_channel(endpoint) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        assert not stub.Export(_request(project, [first])).HasField("partial_success")
        retry = stub.Export(_request(project, [first]))
        assert not retry.HasField("partial_success")
        answer = stub.Export(_request(project, [impostor, new_span("fine")]))
        twin = new_span("twin")
        other_twin = PbSpan()
        other_twin.CopyFrom(twin)
        other_twin.end_time_unix_nano += 1
        within = stub.Export(_request(project, [twin, twin, other_twin]))
    assert answer.partial_success.rejected_spans == 1
    assert first.span_id.hex() in answer.partial_success.error_message
    assert within.partial_success.rejected_spans == 1  # the exact repeat is no conflict
    assert "earlier in this request" in within.partial_success.error_message
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as db:
        names = db.execute("SELECT name FROM otel_spans ORDER BY name").fetchall()
    assert names == [("fine",), ("first",), ("twin",)]
    assert {t["key"] for t in traces_of(project)} == {"first", "fine", "twin"}


def test_a_steps_rollouts_sent_apart_through_two_writers_give_one_statistics_row(
    trackio_dir, project
):
    """Eight rollouts of step 3 in two groups, each rollout's root and generation sent as
    requests of their own, shuffled, through two writer processes, after the step's own
    training span: one row at step 3 with the statistics of all eight."""
    rewards = [0.0, 1.0, 1.0, 0.5, 0.25, 0.25, 0.25, 0.25]
    spans = [new_span("trackio.train.step")]
    spans[0].attributes.add(key="trackio.step").value.int_value = 3
    for i, reward in enumerate(rewards):
        root = new_span("trackio.rollout")
        root.attributes.extend(
            _kv(key, value)
            for key, value in {
                "trackio.step": 3,
                "trackio.rollout.group_id": f"g{i // 4}",
                "trackio.rollout.reward": reward,
                "trackio.rollout.reward.correct": reward * 2,
            }.items()
        )
        spans += [root, new_span("chat", trace=root.trace_id, parent=root.span_id)]
    first, rest = spans[0], spans[1:]
    random.Random(3).shuffle(rest)
    pool = WriterPool(trackio_dir, processes=2).start()
    try:
        pool.submit("traces", _request(project, [first]).SerializeToString()).result(60)
        futures = [pool.submit("traces", _request(project, [s]).SerializeToString()) for s in rest]
        for future in futures:
            future.result(timeout=60)
    finally:
        pool.close()
    from trackio.sqlite_storage import SQLiteStorage

    (run,) = SQLiteStorage.get_run_records(project)
    logged = SQLiteStorage.get_logs(project, run["name"], run_id=run["id"])
    (row,) = [r for r in logged if "rollout/count" in r]
    assert row["step"] == 3
    assert row["rollout/count"] == 8
    assert row["rollout/reward"] == pytest.approx(sum(rewards) / 8)
    assert row["rollout/reward_max"] == 1.0 and row["rollout/reward_min"] == 0.0
    assert row["rollout/rewards/correct/mean"] == pytest.approx(sum(rewards) / 4)
    assert row["rollout/frac_reward_zero_std"] == 0.5  # the second group's rewards are equal


@pytest.mark.parametrize("fixture", ["new_span_only", "openinference", "openllmetry"])
def test_a_stored_view_reads_back_as_it_was_made(fixture):
    """Every field of a span's view survives ``otel_spans.view`` (a field left out of the
    stored form would silently change the trace once it is merged from stored views)."""
    traces, _ = load_fixture(fixture, "views")
    for span in translate_spans.from_request(traces).spans:
        made = view(span, [])
        made.name, made.logs = "shown as", 3  # fields the fixtures leave at their default
        whole, thin = span_views.encode(made)
        columns = (made.span_id, made.parent_id, made.span_name, made.start_ns, made.end_ns)
        assert span_views.decode(*columns, whole) == made
        if thin is not None:  # its input, output and metadata come from its trace's row
            assert span_views.is_thin(thin) and not span_views.is_thin(whole)
            io = (made.input, made.output, made.metadata)
            assert span_views.decode(*columns, thin, io=io) == made


# --- Thin views, where the row does not hold a span as it was made (found in review) -----
IMAGE = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


HI = [{"type": "text", "content": "hi"}]


def _generation(name: str, trace: bytes) -> PbSpan:
    span = new_span(name, trace=trace)
    span.attributes.extend(
        [
            _kv("gen_ai.operation.name", "chat"),
            _kv("gen_ai.request.model", "m"),
            _kv("gen_ai.usage.input_tokens", 3),
            _kv("gen_ai.usage.output_tokens", 4),
            _kv("gen_ai.input.messages", json.dumps([{"role": "user", "parts": HI}])),
        ]
    )
    return span


def _with_image(span: PbSpan, url: str) -> PbSpan:
    prefix = "llm.input_messages.0.message."
    span.attributes.extend(
        [
            _kv("openinference.span.kind", "LLM"),
            _kv(prefix + "role", "user"),
            _kv(prefix + "contents.0.message_content.type", "image"),
            _kv(prefix + "contents.0.message_content.image.image.url", url),
        ]
    )
    return span


def _send_apart_and_whole(store: SQLiteStore, project: str, spans: list[PbSpan]) -> None:
    for span in spans:
        rows.write(store, translate_spans.from_request(_request(project, [span])))
    rows.write(store, translate_spans.from_request(_request(f"{project}-whole", spans)))


def test_a_generation_demoted_then_freed_by_a_cycle_cut_reads_as_the_trace_sent_whole(
    trackio_dir, store, project
):
    """x (a generation under q, not yet sent) is stored thin; g, a generation under x,
    demotes x; q, under g, closes the cycle x→q→g→x, which is cut above g (the earliest),
    so x is a generation again: its metadata must not keep the demotion's aggregates."""
    trace = new_span("anchor").trace_id
    g, x, q = _generation("g", trace), _generation("x", trace), new_span("q", trace=trace)
    x.parent_span_id, g.parent_span_id, q.parent_span_id = q.span_id, x.span_id, g.span_id
    _send_apart_and_whole(store, project, [x, g, q])
    assert trace_rows(trackio_dir, project) == trace_rows(trackio_dir, f"{project}-whole")


def test_spans_whose_row_trackio_deleted_are_made_again_from_their_raw_rows(
    trackio_dir, store, project
):
    """Trackio's delete_run removes a run's traces rows, not otel_spans: a thin view then
    has no row to read its content from, and is made again from its stored span."""
    a = _generation("a", new_span("anchor").trace_id)
    rows.write(store, translate_spans.from_request(_request(project, [a])))
    assert whole_views(trackio_dir, project) == []
    with closing(sqlite3.connect(trackio_dir / f"{project}.db")) as db:
        db.execute("DELETE FROM traces")
        db.commit()
    b = new_span("b", trace=a.trace_id, parent=a.span_id)
    rows.write(store, translate_spans.from_request(_request(project, [b])))
    rows.write(store, translate_spans.from_request(_request(f"{project}-whole", [a, b])))
    assert trace_rows(trackio_dir, project) == trace_rows(trackio_dir, f"{project}-whole")


def test_an_upper_case_data_url_keeps_its_view_whole_and_lands_under_the_final_step(
    trackio_dir, store, project
):
    """Media placement reads ``DATA:`` as ``data:``; so must the view's media check, or a
    thin view's image would be placed for good under a step that later changes."""
    root = new_span("root")
    root.attributes.append(_kv("trackio.step", 5))
    upper, lower = (new_span(n, trace=root.trace_id, parent=root.span_id) for n in "ab")
    _with_image(upper, "DATA:image/png;base64," + IMAGE)
    _with_image(lower, "data:image/png;base64," + IMAGE)
    _send_apart_and_whole(store, project, [upper, lower, root])
    (got,) = trace_rows(trackio_dir, project).values()
    (want,) = trace_rows(trackio_dir, f"{project}-whole").values()
    assert json.loads(got[3]) == json.loads(want[3].replace(f"{project}-whole", project))
    assert got[3].count(f'"file_path":"{project}/long/5/') == 2  # the final step's folder


def test_a_spans_log_events_read_the_same_in_either_arrival_order(trackio_dir, store, project):
    """Two inference-details events of one span, sent apart and sent together: the
    later one (by time) wins either way (found in review: arrival order decided)."""
    chat = new_span("chat m")
    chat.attributes.extend([_kv("gen_ai.operation.name", "chat"), _kv("gen_ai.request.model", "m")])

    def details(target: str, *texts: str) -> ExportLogsServiceRequest:
        request = ExportLogsServiceRequest()
        rl = request.resource_logs.add()
        for key, value in {"trackio.project": target, "trackio.run.name": "long"}.items():
            rl.resource.attributes.add(key=key).value.string_value = value
        for t, text in enumerate(texts, start=1):
            record = rl.scope_logs.add().log_records.add(
                time_unix_nano=t,
                event_name="gen_ai.client.inference.operation.details",
                trace_id=chat.trace_id,
                span_id=chat.span_id,
            )
            parts = [{"type": "text", "content": text}]
            record.attributes.append(
                _kv("gen_ai.input.messages", json.dumps([{"role": "user", "parts": parts}]))
            )
        return request

    for target in (project, f"{project}-whole"):
        rows.write(store, translate_spans.from_request(_request(target, [chat])))
    first, second = details(project, "first"), details(project, "second")
    second.resource_logs[0].scope_logs[0].log_records[0].time_unix_nano = 2
    for request in (first, second):
        rows.write(store, translate_logs.from_request(request))
    rows.write(store, translate_logs.from_request(details(f"{project}-whole", "first", "second")))
    assert trace_rows(trackio_dir, project) == trace_rows(trackio_dir, f"{project}-whole")
