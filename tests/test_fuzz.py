"""Bounded fuzzing of a real collector: a few thousand mutated and nasty OTLP requests.

Recorded fixtures mutated byte by byte, random bytes, and requests built field by field
from hostile values (deep and huge JSON text, extreme numbers, odd UTF-8, ids that loop,
names that are paths, images that lie) go to the three services from several clients at
once. No answer may be INTERNAL (or anything but OK, INVALID_ARGUMENT and backpressure),
the health check answers SERVING throughout, and known-good data sent before, during and
after reads back through Trackio's reader exactly as a clean project shows it.

Seeded: ``TRACKIO_OTEL_FUZZ_SEED`` replays a run (the failing seed is in the message).
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import math
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import requests
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from trackio.sqlite_storage import SQLiteStorage

from tests.conftest import load_fixture, local_config, runs
from tests.test_http_receiver import hex_ids
from trackio_otel.collector import Collector

SEED = int(os.environ.get("TRACKIO_OTEL_FUZZ_SEED", "20261201"))
REQUESTS = 3000
CLIENTS = 4
DEADLINE_S = 45.0
"""Fuzzing stops here even if fewer requests went out (a loaded machine); the count is printed."""
ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
RETRIED = {grpc.StatusCode.RESOURCE_EXHAUSTED}
"""Backpressure: the exporters retry it; so does the fuzzer, once."""
SERVICES = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
FIXTURES = ("openinference", "openllmetry", "new_span_only", "legacy_content_true")
U64 = 2**64 - 1

# --- Hostile values -------------------------------------------------------------------------
NASTY_TEXT = [
    "",
    "\x00",
    "\x00\x01\x7f",
    "é",
    "e\u0301" * 50,
    "\u202e\u2028\u2029\ufeff",
    "\U0010ffff\uffff",
    "💥" * 300,
    "../../../../etc/passwd",
    "..",
    "/",
    "a/b\\c",
    "registry-x",
    "x_system",
    "p" * 300,
    "é" * 150,
    "NaN",
    "Infinity",
    "[NaN, Infinity, -Infinity, 1e999]",
    '{"a": 1e999}',
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 3000 + "1" + "}" * 3000,
    "[" * 70 + "]" * 70,
    "[" * 50_000,
    "1" * 5000,
    "data:image/png;base64,!!!!",
    "data:image/" + "x" * 300 + ";base64,AAAA",
    "data:image/..;base64,AAAA",
    "data:;base64," + "A" * 4000,
    "x" * 200_000,
]
NUMBERS = [0, 1, -1, 2**31, 2**53, 2**63 - 1, -(2**63)]
FLOATS = [0.0, -0.0, 1.5, 1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf]
STEPS = [0, 1, 7, -3, 10**6, 2**53, 2**63 - 1, -(2**63)]
TIMES = [0, 1, 1_700_000_000_000_000_000, 2**63 - 1, 2**63, U64]
PROJECTS = ["fuzz-a", "fuzz-b", "", "../x", "a/b", "p" * 300, "é" * 150, "registry-x", "x_traces"]
GENAI_KEYS = [
    "gen_ai.operation.name",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.tool.call.id",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cost",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.prompt.0.content",
    "gen_ai.prompt.0.role",
    "gen_ai.completion.0.tool_calls.0.arguments",
    "llm.input_messages.0.message.contents.0.message_content.type",
    "llm.input_messages.0.message.contents.0.message_content.image.image.url",
    "llm.output_messages.0.message.content",
    "llm.token_count.prompt",
    "openinference.span.kind",
    "input.value",
    "output.value",
    "traceloop.entity.input",
    "traceloop.span.kind",
    "trackio.step",
    "trackio.trace.key",
    "trackio.rollout.reward",
    "trackio.rollout.reward.x",
    "error.type",
    "session.id",
    "ai.operationId",
    "ai.prompt",
    "ai.prompt.messages",
    "ai.response.text",
    "ai.response.toolCalls",
    "ai.usage.inputTokens",
    "ai.toolCall.id",
    "ai.toolCall.args",
    "ai.toolCall.result",
    "llm.input_messages.0.message.content",
    "llm.input_messages.0.message.role",
]
AI_OPERATIONS = ["ai.generateText.doGenerate", "ai.streamText.doStream", "ai.toolCall", "x"]
"""The Vercel AI SDK's ``ai.operationId`` values."""
SMOLAGENTS_TEXT = [
    "Calling tools:\n[{'id': 'c1', 'function': {'name': 'x', 'arguments': {}}}]",
    "Calling tools:\n[{",
    "Call id: c1\nObservation:\n" + "x" * 50,
    "Observation:\n",
]
"""smolagents' own message texts, which its convention parses."""
OPERATIONS = ["chat", "execute_tool", "invoke_agent", "embeddings", "text_completion", "x"]


class Fuzzer:
    def __init__(self, rng: random.Random, good_project: str) -> None:
        self.rng = rng
        self.projects = [*PROJECTS, good_project]  # the good project's own runs stay apart
        self.seeds = {
            name: load_fixture(name, "fuzz-bytes")[0].SerializeToString() for name in FIXTURES
        }
        self.seeds["logs"] = load_fixture("legacy_content_true", "fuzz-bytes")[
            1
        ].SerializeToString()

    def request(self) -> tuple[str, bytes]:
        r = self.rng.random()
        if r < 0.25:
            return self.rng.choice(list(SERVICES)), self.mutated_bytes()
        if r < 0.30:
            return self.rng.choice(list(SERVICES)), self.rng.randbytes(self.rng.randrange(2000))
        if r < 0.65:
            return "traces", self.traces().SerializeToString()
        if r < 0.82:
            return "logs", self.logs().SerializeToString()
        return "metrics", self.metrics().SerializeToString()

    # --- Byte-level ------------------------------------------------------------------------
    def mutated_bytes(self) -> bytes:
        rng = self.rng
        data = bytearray(rng.choice(list(self.seeds.values())))
        for _ in range(rng.randrange(1, 6)):
            op, i = rng.randrange(5), rng.randrange(len(data) or 1)
            if op == 0 and data:
                data[i] ^= 1 << rng.randrange(8)
            elif op == 1:
                data[i:i] = rng.randbytes(rng.randrange(1, 16))
            elif op == 2:
                del data[i : i + rng.randrange(1, 64)]
            elif op == 3:
                data = data[: rng.randrange(len(data) + 1)]
            else:
                j = rng.randrange(len(data) + 1)
                data[j:j] = data[i : i + rng.randrange(1, 256)]
        return bytes(data)

    # --- Field-level -----------------------------------------------------------------------
    def text(self) -> str:
        rng = self.rng
        if rng.random() < 0.3:
            return rng.choice(NASTY_TEXT)
        if rng.random() < 0.5:
            return self.json_text()
        return "".join(
            chr(rng.choice([rng.randrange(32, 127), rng.randrange(0xA0, 0xD7FF)]))
            for _ in range(rng.randrange(12))
        )

    def json_text(self) -> str:
        rng = self.rng
        png = base64.b64encode(rng.randbytes(rng.randrange(1, 64))).decode()
        part = rng.choice(
            [
                {"type": "text", "content": rng.choice(NASTY_TEXT[:20])},
                {"type": "blob", "modality": "image", "mime_type": "image/png", "content": png},
                {"type": "blob", "mime_type": rng.choice(NASTY_TEXT[:16]), "content": "!!"},
                {
                    "type": "tool_call",
                    "id": rng.choice(NASTY_TEXT[:12]),
                    "name": None,
                    "arguments": {"a": [1, {"b": None}]},
                },
                {
                    "type": "tool_call_response",
                    "id": "c1",
                    "response": rng.choice([None, 1, [], {}]),
                },
                {"type": "uri", "modality": "image", "uri": rng.choice(NASTY_TEXT[:30])},
                {"type": rng.choice(NASTY_TEXT[:10])},
                rng.choice([None, 1, "x", []]),
            ]
        )
        message = {
            "role": rng.choice(["user", "assistant", "system", "tool", "model", None, 7]),
            "parts": [part],
        }
        shape = rng.choice(
            [
                [message],
                message,
                [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": f"data:image/png;base64,{png}"},
                            }
                        ],
                    }
                ],
                [{"role": "assistant", "tool_calls": [{"id": 1, "function": None}]}],
                {"finish_reasons": None},
                [[[[]]]],
            ]
        )
        text = json.dumps(shape)
        return text.replace("1", "NaN", 1) if rng.random() < 0.1 else text

    def value(self, into: AnyValue, depth: int = 0) -> None:
        rng = self.rng
        kind = rng.randrange(8 if depth < 20 else 5)
        if kind == 0:
            into.string_value = self.text()
        elif kind == 1:
            into.int_value = rng.choice(NUMBERS)
        elif kind == 2:
            into.double_value = rng.choice(FLOATS)
        elif kind == 3:
            into.bool_value = rng.random() < 0.5
        elif kind == 4:
            into.bytes_value = rng.randbytes(rng.randrange(40))
        elif kind == 5:
            for _ in range(rng.randrange(4)):
                self.value(into.array_value.values.add(), depth + 1)
        elif kind == 6:
            for _ in range(rng.randrange(4)):
                kv = into.kvlist_value.values.add(key=rng.choice([*GENAI_KEYS, "", "k"]))
                self.value(kv.value, depth + 1)
        # kind 7: an empty AnyValue

    def attributes(self, into, keys: list[str]) -> None:
        rng = self.rng
        for _ in range(rng.randrange(8)):
            key = rng.choice(keys) if rng.random() < 0.85 else self.text()[:64]
            kv: KeyValue = into.add(key=key)
            if key == "gen_ai.operation.name" and rng.random() < 0.8:
                kv.value.string_value = rng.choice(OPERATIONS)
            elif key == "ai.operationId" and rng.random() < 0.8:
                kv.value.string_value = rng.choice(AI_OPERATIONS)
            elif key == "llm.input_messages.0.message.content" and rng.random() < 0.5:
                kv.value.string_value = rng.choice(SMOLAGENTS_TEXT)
            elif key == "trackio.step" and rng.random() < 0.7:
                kv.value.int_value = rng.choice(STEPS)
            else:
                self.value(kv.value)

    def resource(self, into) -> None:
        rng = self.rng
        attrs = into.attributes
        attrs.add(key="trackio.project").value.string_value = rng.choice(self.projects)
        if rng.random() < 0.7:
            name = rng.choice(
                ["fuzz", "../../../../x/run", "a/b", "..", "\x00", "r" * 300, "é" * 101]
            )
            attrs.add(key="trackio.run.name").value.string_value = name
        if rng.random() < 0.2:
            attrs.add(key="trackio.run.config").value.string_value = rng.choice(
                [
                    "{",
                    "[" * 10_000,
                    '{"a": NaN}',
                    '{"a": 1}',
                    "null",
                    '{"a":' * 100 + "1" + "}" * 100,
                ]
            )
        if rng.random() < 0.3:
            self.attributes(
                attrs,
                [
                    "service.name",
                    "service.instance.id",
                    "trackio.run.id",
                    "trackio.run.group",
                    "trackio.run.config.x",
                ],
            )

    def ident(self, size: int, pool: list[bytes]) -> bytes:
        rng = self.rng
        r = rng.random()
        if r < 0.05:
            return rng.choice([b"", bytes(size), rng.randbytes(size - 1), rng.randbytes(size + 3)])
        if r < 0.5 and pool:
            return rng.choice(pool)
        pool.append(rng.randbytes(size))
        return pool[-1]

    def traces(self) -> ExportTraceServiceRequest:
        rng = self.rng
        request = ExportTraceServiceRequest()
        trace_ids: list[bytes] = []
        span_ids: list[bytes] = []
        for _ in range(rng.randrange(1, 3)):
            rs = request.resource_spans.add()
            self.resource(rs.resource)
            ss = rs.scope_spans.add()
            ss.scope.name = rng.choice(
                ["openinference.instrumentation.smolagents", "ai", self.text()[:100]]
            )
            for _ in range(rng.randrange(1, 6)):
                span = ss.spans.add()
                span.trace_id = self.ident(16, trace_ids)
                span.span_id = self.ident(8, span_ids)
                if rng.random() < 0.7:
                    span.parent_span_id = self.ident(8, span_ids)
                span.name = self.text()[:200]
                span.kind = rng.choice([0, 1, 2, 3, 99])
                span.start_time_unix_nano = rng.choice(TIMES)
                span.end_time_unix_nano = rng.choice(TIMES)
                span.status.code = rng.choice([0, 1, 2, 17])
                span.status.message = self.text()[:100]
                self.attributes(span.attributes, GENAI_KEYS)
                for _ in range(rng.randrange(3) if rng.random() < 0.3 else 0):
                    event = span.events.add(
                        name=rng.choice(
                            [
                                "exception",
                                "gen_ai.content.prompt",
                                "gen_ai.content.completion",
                                self.text()[:20],
                            ]
                        )
                    )
                    event.time_unix_nano = rng.choice(TIMES)
                    self.attributes(
                        event.attributes,
                        [
                            "gen_ai.prompt",
                            "gen_ai.completion",
                            "exception.type",
                            "exception.message",
                        ],
                    )
                if rng.random() < 0.1:
                    link = span.links.add(
                        trace_id=self.ident(16, trace_ids), span_id=self.ident(8, span_ids)
                    )
                    self.attributes(link.attributes, GENAI_KEYS)
        return request

    def logs(self) -> ExportLogsServiceRequest:
        rng = self.rng
        request = ExportLogsServiceRequest()
        rl = request.resource_logs.add()
        self.resource(rl.resource)
        records = rl.scope_logs.add().log_records
        trace_ids: list[bytes] = []
        span_ids: list[bytes] = []
        for _ in range(rng.randrange(1, 6)):
            record = records.add()
            record.time_unix_nano = rng.choice(TIMES)
            record.observed_time_unix_nano = rng.choice(TIMES)
            record.severity_number = rng.choice([0, 9, 17, 255])
            record.event_name = rng.choice(
                [
                    "gen_ai.user.message",
                    "gen_ai.choice",
                    "gen_ai.tool.message",
                    "trackio.log",
                    "gen_ai.client.inference.operation.details",
                    "",
                    self.text()[:30],
                ]
            )
            if rng.random() < 0.8:
                record.trace_id = self.ident(16, trace_ids)
                record.span_id = self.ident(8, span_ids)
            if rng.random() < 0.9:
                self.value(record.body)
            self.attributes(record.attributes, [*GENAI_KEYS, "event.name"])
        return request

    def metrics(self) -> ExportMetricsServiceRequest:
        rng = self.rng
        request = ExportMetricsServiceRequest()
        rm = request.resource_metrics.add()
        self.resource(rm.resource)
        scope = rm.scope_metrics.add()
        names = [
            "hw.gpu.utilization",
            "hw.errors",
            "system.cpu.utilization",
            "system.memory.usage",
            "gpu.memory.used",
            "train/loss",
            "gen_ai.client.token.usage",
        ]
        keys = [
            "hw.id",
            "gpu.index",
            "trackio.gpu.index",
            "cpu.logical_number",
            "cpu.mode",
            "trackio.step",
            "system.memory.state",
            "hw.type",
            "error.type",
        ]
        for _ in range(rng.randrange(1, 5)):
            metric = scope.metrics.add(
                name=rng.choice(names) if rng.random() < 0.8 else self.text()[:50]
            )
            kind = rng.choice(["gauge", "sum", "histogram", "exponential_histogram", "summary"])
            data = getattr(metric, kind)
            for _ in range(rng.randrange(1, 4)):
                dp = data.data_points.add()
                dp.time_unix_nano = rng.choice(TIMES)
                dp.start_time_unix_nano = rng.choice(TIMES)
                self.attributes(dp.attributes, keys)
                if kind in ("gauge", "sum"):
                    if rng.random() < 0.5:
                        dp.as_double = rng.choice(FLOATS)
                    else:
                        dp.as_int = rng.choice(NUMBERS)
                    continue
                dp.count = rng.choice([0, 1, 3, 2**63, U64])
                dp.sum = rng.choice(FLOATS)
                if kind == "histogram":
                    dp.explicit_bounds.extend(rng.choice(FLOATS) for _ in range(rng.randrange(4)))
                    dp.bucket_counts.extend(
                        rng.choice([0, 1, U64]) for _ in range(rng.randrange(5))
                    )
                    if rng.random() < 0.5:
                        dp.min, dp.max = rng.choice(FLOATS), rng.choice(FLOATS)
                elif kind == "exponential_histogram":
                    dp.scale = rng.choice([-10, 0, 20, 2**31 - 1])
                    dp.zero_count = rng.choice([0, U64])
                    dp.positive.offset = rng.choice([0, -(2**31), 2**31 - 1])
                    dp.positive.bucket_counts.extend([1, U64][: rng.randrange(3)])
                else:
                    q = dp.quantile_values.add()
                    q.quantile, q.value = rng.choice(FLOATS), rng.choice(FLOATS)
        return request


# --- Known-good data ------------------------------------------------------------------------
def send_good(channel: grpc.Channel, project: str) -> None:
    """Every fixture's traces and logs, a stepped metric and a trackio.log, into run 'good'."""
    export = {name: channel.unary_unary(path) for name, path in SERVICES.items()}
    for name in FIXTURES:
        traces, logs = load_fixture(name, project)
        for rs in [*traces.resource_spans, *logs.resource_logs]:
            rs.resource.attributes.add(key="trackio.run.name").value.string_value = "good"
        for signal, request in (("traces", traces), ("logs", logs)):
            if request.ByteSize():
                reply = export[signal](request.SerializeToString(), timeout=60)
                assert not reply, (name, reply)  # no partial success
    metrics = ExportMetricsServiceRequest()
    rm = metrics.resource_metrics.add()
    for key, value in (("trackio.project", project), ("trackio.run.name", "good")):
        rm.resource.attributes.add(key=key).value.string_value = value
    dp = rm.scope_metrics.add().metrics.add(name="train/loss").gauge.data_points.add()
    dp.time_unix_nano, dp.as_double = 1_800_000_000_000_000_000, 0.25
    dp.attributes.add(key="trackio.step").value.int_value = 3
    assert not export["metrics"](metrics.SerializeToString(), timeout=60)


def shown(project: str) -> dict:
    """What Trackio's reader shows of the 'good' run: its traces and its metric rows."""
    (run,) = [r for r in runs(project) if r["name"] == "good"]
    traces = SQLiteStorage.get_traces(project, run["name"], run_id=run["id"], sort="step_asc")
    metrics = SQLiteStorage.get_logs(project, run["name"], run_id=run["id"])
    return {
        "traces": [
            # not the row id: it is per run (each project's run has its own id); the OTel
            # trace id is in the metadata
            {k: t[k] for k in ("key", "step", "messages", "spans", "metadata")}
            for t in traces
        ],
        "metrics": [{k: v for k, v in m.items() if k != "timestamp"} for m in metrics],
    }


# --- The test -------------------------------------------------------------------------------
@pytest.fixture
def in_process_collector(trackio_dir: Path) -> Iterator[Collector]:
    """A collector whose writer runs in this process, so its log is the test's to read."""
    with Collector(local_config(trackio_dir, writers=0)) as c:
        yield c


def test_fuzzed_requests_never_fail_internally_nor_disturb_good_data(
    in_process_collector, project, caplog
):
    endpoint = f"127.0.0.1:{in_process_collector.port}"
    caplog.set_level(logging.ERROR, logger="trackio_otel")
    reference, before, during, after = (
        f"{project}-{p}" for p in ("ref", "before", "during", "after")
    )
    with grpc.insecure_channel(endpoint) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        send_good(channel, reference)
        send_good(channel, before)
        expected = shown(reference)
        assert len(expected["traces"]) >= 4 and expected["metrics"]

        codes: Counter[str] = Counter()
        failures: list[str] = []
        lock = threading.Lock()
        sent = [0]
        deadline = time.monotonic() + DEADLINE_S

        def client(index: int) -> None:
            seed = SEED * 100 + index
            fuzzer = Fuzzer(random.Random(seed), before)
            with grpc.insecure_channel(endpoint) as own:
                export: dict[str, Callable] = {s: own.unary_unary(p) for s, p in SERVICES.items()}
                for n in range(REQUESTS // CLIENTS):
                    if time.monotonic() > deadline or len(failures) > 5:
                        return
                    signal, payload = fuzzer.request()
                    code, detail = _call(export[signal], payload)
                    if code in RETRIED:
                        time.sleep(1)
                        code, detail = _call(export[signal], payload)
                    with lock:
                        codes[code.name] += 1
                        sent[0] += 1
                        if code not in ALLOWED:
                            failures.append(
                                f"seed {seed} request {n} ({signal}): {code.name} {detail}"
                            )

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        checks = 0
        while any(t.is_alive() for t in threads):
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            checks += 1
            if checks == 3:
                send_good(channel, during)  # between fuzzed requests, from another client
            time.sleep(0.5)
        for t in threads:
            t.join()
        send_good(channel, after)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == (
            health_pb2.HealthCheckResponse.SERVING
        )

    print(f"fuzz seed {SEED}: {sent[0]} requests, {dict(codes)}, {checks} health checks")
    assert not failures, "\n".join(failures)
    # A span or item that fell back (shown plainly, rejected as untranslatable) is a bug too.
    errors = [r for r in caplog.records if r.name.startswith("trackio_otel")]
    assert not errors, "\n".join(
        f"{r.getMessage()}: {r.exc_info and r.exc_info[1]!r}" for r in errors[:5]
    )
    assert sent[0] >= 1000, f"only {sent[0]} fuzzed requests within {DEADLINE_S:.0f}s"
    assert codes["OK"] > sent[0] // 3 and codes["INVALID_ARGUMENT"] > 0
    for p in (before, during, after):
        assert shown(p) == expected, p


def _call(export: Callable, payload: bytes) -> tuple[grpc.StatusCode, str]:
    try:
        export(payload, timeout=60)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


# --- OTLP/JSON over HTTP --------------------------------------------------------------------
JSON_REQUESTS = 800
JSON_DEADLINE_S = 25.0
NASTY_JSON: list[object] = [
    None,
    True,
    -1,
    2**64,
    -(2**63) - 1,
    10**400,
    1e308,
    "",
    "zz",
    "0" * 31,
    "\x00",
    "NaN",
    [],
    {},
    {"stringValue": None},
    {"intValue": "x"},
    {"doubleValue": "Infinity"},
    {"arrayValue": {"values": [{"kvlistValue": {"values": [{"key": 1}]}}]}},
    "p" * 300,
]


class JsonFuzzer:
    """OTLP/JSON from the recorded fixtures with values swapped for hostile ones, keys
    dropped, lists repeated, nesting deepened, or the text itself cut and flipped."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seeds: list[tuple[str, dict]] = []
        for name in FIXTURES:
            traces, logs = load_fixture(name, "fuzz-json")
            self.seeds.append(("traces", hex_ids(MessageToDict(traces))))
            if logs.ByteSize():
                self.seeds.append(("logs", hex_ids(MessageToDict(logs))))

    def request(self) -> tuple[str, bytes]:
        rng = self.rng
        signal, seed = rng.choice(self.seeds)
        tree = copy.deepcopy(seed)
        for _ in range(rng.randrange(1, 8)):
            self.mutate(tree)
        text = json.dumps(tree, ensure_ascii=rng.random() < 0.5).encode()
        if rng.random() < 0.15:  # the text itself: cut or a flipped bit
            i = rng.randrange(len(text))
            flipped = text[:i] + bytes([text[i] ^ 1]) + text[i + 1 :]
            text = text[:i] if rng.random() < 0.5 else flipped
        return signal, text

    def mutate(self, tree: object) -> None:
        rng = self.rng
        parent, key = self.pick(tree)
        if parent is None:
            return
        op = rng.random()
        if op < 0.5:
            value = rng.choice(NASTY_JSON)
            parent[key] = copy.deepcopy(value) if isinstance(value, (list, dict)) else value
        elif op < 0.65 and isinstance(parent, dict):
            del parent[key]
        elif op < 0.8 and isinstance(parent[key], list) and parent[key]:
            parent[key] = parent[key] * rng.randrange(2, 10)
        elif op < 0.9:
            nested: object = parent[key]
            for _ in range(rng.choice([10, 70, 300])):
                nested = [nested]
            parent[key] = nested
        else:
            parent[key] = rng.choice(NASTY_TEXT)[:10_000]

    def pick(self, tree: object) -> tuple[dict | list | None, object]:
        """A random (container, key) on a random walk down from the root."""
        parent, key, node = None, None, tree
        while isinstance(node, (dict, list)) and node and self.rng.random() < 0.85:
            keys = list(node) if isinstance(node, dict) else range(len(node))
            key = self.rng.choice(keys)
            parent, node = node, node[key]
        return parent, key


def test_fuzzed_otlp_json_over_http_never_fails_internally_nor_disturbs_good_data(
    in_process_collector, project, caplog
):
    """Every answer is 200, 400 or 413 (429 is retried once); the good data sent before and
    after reads back as a clean project shows it."""
    c = in_process_collector
    caplog.set_level(logging.ERROR, logger="trackio_otel")
    reference, before, after = (f"{project}-{p}" for p in ("ref", "before", "after"))
    with grpc.insecure_channel(f"127.0.0.1:{c.port}") as channel:
        send_good(channel, reference)
        send_good(channel, before)
    expected = shown(reference)
    codes: Counter[int] = Counter()
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + JSON_DEADLINE_S

    def client(index: int) -> None:
        seed = SEED * 100 + 50 + index
        fuzzer = JsonFuzzer(random.Random(seed))
        with requests.Session() as http:
            for n in range(JSON_REQUESTS // CLIENTS):
                if time.monotonic() > deadline or len(failures) > 5:
                    return
                signal, body = fuzzer.request()
                url = f"http://127.0.0.1:{c.http_port}/v1/{signal}"
                headers = {"Content-Type": "application/json"}
                answer = http.post(url, data=body, headers=headers, timeout=60)
                if answer.status_code == 429:
                    time.sleep(1)
                    answer = http.post(url, data=body, headers=headers, timeout=60)
                with lock:
                    codes[answer.status_code] += 1
                    if answer.status_code not in (200, 400, 413):
                        failures.append(
                            f"seed {seed} request {n} ({signal}): {answer.status_code} "
                            f"{answer.text[:300]}"
                        )

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with grpc.insecure_channel(f"127.0.0.1:{c.port}") as channel:
        send_good(channel, after)
    sent = sum(codes.values())
    print(f"JSON fuzz seed {SEED}: {sent} requests, {dict(codes)}")
    assert not failures, "\n".join(failures)
    errors = [r for r in caplog.records if r.name.startswith("trackio_otel")]
    assert not errors, "\n".join(
        f"{r.getMessage()}: {r.exc_info and r.exc_info[1]!r}" for r in errors[:5]
    )
    assert sent >= 200, f"only {sent} fuzzed requests within {JSON_DEADLINE_S:.0f}s"
    assert codes[200] > sent // 4 and codes[400] > 0
    for p in (before, after):
        assert shown(p) == expected, p
