"""Writer processes: several commit into one database, and one can die without loss.

Why: the collector spreads decoding, translation and trace assembly over processes that
assemble traces from a snapshot with no lock held. A trace split across requests that
different writers handle at once must still become one complete Trackio trace, and a
writer that dies must fail its requests with a status exporters retry.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from tests.conftest import AGENT_ROLES, load_fixture, local_config, traces_of
from tests.test_collector_e2e import split_root
from tests.test_collector_robustness import (
    new_span,
    stored_span_ids,
    trace_request,
    trackio_lock,
    wait_until,
)
from trackio_otel import rows
from trackio_otel.collector import Collector
from trackio_otel.store import sqlite as sqlite_store
from trackio_otel.store.sqlite import SQLiteStore
from trackio_otel.translate import logs as translate_logs
from trackio_otel.translate import spans


@pytest.mark.parametrize("commit_order", ["children first", "root first"])
def test_a_trace_prepared_by_two_writers_at_once_is_stored_whole(
    trackio_dir, project, commit_order
):
    """Both writers assemble from the same empty snapshot; whichever commits second sees
    the other's spans arrived meanwhile and assembles the trace again."""
    traces, _ = load_fixture("new_span_only", project)
    root = next(
        s
        for rs in traces.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
        if not s.parent_span_id
    )
    children, late_root = split_root(traces, root.trace_id)
    writer_a, writer_b = SQLiteStore(trackio_dir), SQLiteStore(trackio_dir)
    (a,) = rows.prepare(writer_a, spans.from_request(children))
    (b,) = rows.prepare(writer_b, spans.from_request(late_root))
    if commit_order == "children first":
        a.commit(writer_a)
        b.commit(writer_b)
    else:
        b.commit(writer_b)
        a.commit(writer_a)
    writer_a.close()
    writer_b.close()

    (trace,) = [t for t in traces_of(project) if t["metadata"]["trace_id"] == root.trace_id.hex()]
    members = sum(s.trace_id == root.trace_id.hex() for s in a.batch.spans + b.batch.spans)
    assert len(trace["spans"]) == members
    assert trace["key"] == root.name
    assert [m["role"] for m in trace["messages"]] == AGENT_ROLES
    assert [s["parent_id"] for s in trace["spans"]].count(None) == 1


@pytest.mark.parametrize("commit_order", ["spans first", "events first"])
def test_spans_and_their_log_events_prepared_by_two_writers_at_once_read_whole(
    trackio_dir, project, commit_order
):
    """The spans and the GenAI log events that carry their content, each prepared from a
    snapshot without the other: whichever commits second finds views made without the
    committed events (or none made) and makes them again from the committed rows."""
    traces, logs = load_fixture("legacy_content_true", project)
    writer_a, writer_b = SQLiteStore(trackio_dir), SQLiteStore(trackio_dir)
    (a,) = rows.prepare(writer_a, spans.from_request(traces))
    (b,) = rows.prepare(writer_b, translate_logs.from_request(logs))
    order = [(a, writer_a), (b, writer_b)]
    for prepared, writer in order if commit_order == "spans first" else order[::-1]:
        prepared.commit(writer)
    writer_a.close()
    writer_b.close()

    reference = f"{project}-in-turn"  # the same requests, committed one after the other
    traces, logs = load_fixture("legacy_content_true", reference)
    with closing(SQLiteStore(trackio_dir)) as writer:
        rows.write(writer, spans.from_request(traces))
        rows.write(writer, translate_logs.from_request(logs))

    def chats(p: str) -> dict[str, list[dict]]:
        return {t["key"]: t["messages"] for t in traces_of(p)}

    assert chats(project) == chats(reference)
    assert AGENT_ROLES in [[m["role"] for m in chat] for chat in chats(project).values()]


def writers(trackio_dir: Path, n: int) -> Collector:
    """A collector with ``n`` writer processes (0: one writer thread in process)."""
    return Collector(local_config(trackio_dir, http_endpoint=None, writers=n))


@pytest.fixture
def many_writers(trackio_dir: Path) -> Iterator[Collector]:
    with writers(trackio_dir, 3) as c:
        yield c


@pytest.fixture
def one_writer(trackio_dir: Path) -> Iterator[Collector]:
    with writers(trackio_dir, 1) as c:
        yield c


def test_split_traces_sent_concurrently_through_several_writers_are_complete(many_writers, project):
    """Each trace's root and child travel in different requests, sent at the same moment
    by two clients, so two writers prepare halves of the same traces concurrently."""
    endpoint = f"127.0.0.1:{many_writers.port}"
    roots = [new_span(f"root {i}") for i in range(90)]
    kids = [new_span(f"kid {i}", trace=r.trace_id, parent=r.span_id) for i, r in enumerate(roots)]
    together = threading.Barrier(2)
    errors: list[Exception] = []

    def client(mine: list[PbSpan]) -> None:
        try:
            with grpc.insecure_channel(endpoint) as channel:
                stub = trace_service_pb2_grpc.TraceServiceStub(channel)
                for i in range(0, len(mine), 3):
                    together.wait(timeout=60)
                    stub.Export(trace_request(project, *mine[i : i + 3]), timeout=60)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(group,)) for group in (roots, kids)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert errors == []
    shown = {t["metadata"]["trace_id"]: t for t in traces_of(project)}
    assert len(shown) == len(roots)
    for root, kid in zip(roots, kids, strict=True):
        trace = shown[root.trace_id.hex()]
        assert {s["id"] for s in trace["spans"]} == {root.span_id.hex(), kid.span_id.hex()}
        assert trace["key"] == root.name
    assert len({t["step"] for t in shown.values()}) == len(roots)  # one step per trace


def test_a_killed_writer_fails_its_requests_retryably_and_is_replaced(
    one_writer, project, trackio_dir
):
    endpoint = f"127.0.0.1:{one_writer.port}"
    (pid,) = one_writer.pipeline.writers.pids
    stuck, after = new_span("stuck"), new_span("after")
    outcome: list[grpc.RpcError] = []

    def export_stuck() -> None:
        with grpc.insecure_channel(endpoint) as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            try:
                stub.Export(trace_request(project, stuck), timeout=60)
            except grpc.RpcError as exc:
                outcome.append(exc)

    with trackio_lock(trackio_dir, project):  # the writer waits for the lock to commit
        sender = threading.Thread(target=export_stuck)
        sender.start()
        wait_until(lambda: one_writer.stats.queued_requests == 1, "the request to reach it")
        os.kill(pid, signal.SIGKILL)
        sender.join(timeout=60)
    (error,) = outcome
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # OTLP exporters retry this
    assert "writer process exited" in error.details()

    with grpc.insecure_channel(endpoint) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        stub.Export(trace_request(project, stuck), timeout=60)  # the exporter's retry
        stub.Export(trace_request(project, after), timeout=60)
    (new_pid,) = one_writer.pipeline.writers.pids
    assert new_pid != pid
    assert {stuck.span_id.hex(), after.span_id.hex()} <= stored_span_ids(project, trackio_dir)
    assert one_writer.stats.failed_requests == 1


def test_writers_in_process_store_the_same(trackio_dir, project):
    traces, _ = load_fixture("new_span_only", project)
    with writers(trackio_dir, 0) as c, grpc.insecure_channel(f"127.0.0.1:{c.port}") as channel:
        assert c.pipeline.writers.pids == []
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(traces, timeout=60)
    (trace,) = [t for t in traces_of(project) if t["key"] == "invoke_agent WeatherBot"]
    assert [m["role"] for m in trace["messages"]] == AGENT_ROLES


def test_a_lock_held_past_the_timeout_is_unavailable_and_the_retry_lands(
    trackio_dir, project, monkeypatch
):
    """A Trackio writer that keeps the project's lock longer than the timeout: the request
    is answered UNAVAILABLE (exporters retry it, with nothing half-written), and the
    retry once the lock is free is stored."""
    monkeypatch.setattr(sqlite_store, "LOCK_TIMEOUT_S", 0.3)
    span = new_span("patient")
    with writers(trackio_dir, 0) as c, grpc.insecure_channel(f"127.0.0.1:{c.port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        stub.Export(trace_request(project, new_span("first")), timeout=60)  # the db exists
        with trackio_lock(trackio_dir, project), pytest.raises(grpc.RpcError) as refused:
            stub.Export(trace_request(project, span), timeout=60)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "could not commit, retry: could not lock" in refused.value.details()
        assert span.span_id.hex() not in stored_span_ids(project, trackio_dir)
        stub.Export(trace_request(project, span), timeout=60)
    assert span.span_id.hex() in stored_span_ids(project, trackio_dir)


def test_processes_that_never_open_the_database_do_not_import_sqlalchemy():
    """The collector's receiver and a training process using the SDK hand requests to
    writer processes; SQLAlchemy would add ~15 MB to each for nothing."""
    check = (
        "import sys, trackio_otel.cli, trackio_otel.sdk, trackio_otel.sdk.exporter;"
        "assert 'sqlalchemy' not in sys.modules, sorted(m for m in sys.modules if 'sqlal' in m)"
    )
    subprocess.run([sys.executable, "-c", check], check=True, timeout=120)


def test_a_writer_thread_that_dies_fails_its_requests_retryably_and_is_replaced(
    trackio_dir, project, monkeypatch
):
    """``sys.exit()`` called on the writer thread (by any library it runs) ends only that
    thread, silently. Its request must fail with a status exporters retry rather than wait
    forever, and the next request must find a new writer."""
    real_commit = SQLiteStore.commit
    exits = iter([True])

    def commit_once_exiting(store, write):
        if next(exits, False):
            sys.exit("a library gave up")
        return real_commit(store, write)

    monkeypatch.setattr(SQLiteStore, "commit", commit_once_exiting)
    doomed, retried = new_span("doomed"), new_span("after")
    with writers(trackio_dir, 0) as c, grpc.insecure_channel(f"127.0.0.1:{c.port}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Export(trace_request(project, doomed), timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # OTLP exporters retry this
        assert "writer thread died (SystemExit: a library gave up)" in refused.value.details()
        stub.Export(trace_request(project, doomed), timeout=30)  # the exporter's retry
        stub.Export(trace_request(project, retried), timeout=30)
        assert c.stats.failed_requests == 1
    assert {doomed.span_id.hex(), retried.span_id.hex()} <= stored_span_ids(project, trackio_dir)
