"""ExportMetricsServiceRequest → raw points plus Trackio scalar rows.

Every data point is kept whole. Each point also becomes a scalar under a Trackio key:
points with a step (``trackio.step`` attribute) go to ``metrics`` at that step, all
others to ``system_metrics`` on the time axis. GPU, CPU and memory metrics take Trackio's
own ``gpu/<i>/...``, ``cpu/...``, ``memory/...`` keys and units so the System tab draws
them like Trackio's own monitor; anything else keeps its name (dots become slashes in
the standard namespaces).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, ResourceMetrics

from trackio_otel import semconv
from trackio_otel.translate import pdata, steps
from trackio_otel.translate.identity import canonical, digest, placed
from trackio_otel.translate.model import Batch, Point, Run, Scalars

GIB = float(1 << 30)
MIB_TO_GIB = 1 / 1024
STANDARD_NAMESPACES = (
    "gen_ai.",
    "hw.",
    "process.",
    "system.",
    "http.",
    "db.",
    "rpc.",
    "mcp.",
    "otel.",
    "gpu.",
    "trackio.",
    "jvm.",
    "cpython.",
    "container.",
    "k8s.",
)
# Attributes that split one metric into several series, appended to the key.
DIMENSIONS = (
    "gen_ai.token.type",
    "gen_ai.operation.name",
    "system.memory.state",
    "network.io.direction",
    "disk.io.direction",
    "error.type",
    "cpu.mode",
)


@dataclass(frozen=True, slots=True)
class GpuKey:
    """A GPU metric → ``gpu/<i>/<suffix>``, value × ``scale``."""

    suffix: str
    scale: float = 1.0


GPU_KEYS: dict[str, GpuKey | Callable[[dict[str, Any]], GpuKey | None]] = {
    "hw.gpu.utilization": lambda a: {
        "encoder": GpuKey("enc_utilization", 100),
        "decoder": GpuKey("dec_utilization", 100),
    }.get(str(a.get("hw.gpu.task", "")), GpuKey("utilization", 100)),
    "hw.gpu.memory.utilization": GpuKey("memory_usage"),
    "hw.gpu.memory.usage": GpuKey("allocated_memory", 1 / GIB),
    "hw.gpu.memory.limit": GpuKey("total_memory", 1 / GIB),
    "hw.power": GpuKey("power"),
    "hw.energy": GpuKey("energy_consumed"),
    "hw.temperature": GpuKey("temp"),
    "hw.errors": lambda a: {
        "corrected": GpuKey("corrected_memory_errors"),
        "uncorrected": GpuKey("uncorrected_memory_errors"),
    }.get(str(a.get("error.type", ""))),
    semconv.GPU_SM_CLOCK: GpuKey("sm_clock"),
    semconv.GPU_MEMORY_CLOCK: GpuKey("memory_clock"),
    semconv.GPU_PROCESS_MEMORY: GpuKey("process_memory", 1 / GIB),
    semconv.GPU_MEMORY_BUSY: GpuKey("memory_utilization", 100),
    semconv.GPU_POWER_LIMIT: GpuKey("power_limit"),
    # OpenLIT's own names (no unit on the wire; memory in MiB).
    "gpu.utilization": GpuKey("utilization"),
    "gpu.enc.utilization": GpuKey("enc_utilization"),
    "gpu.dec.utilization": GpuKey("dec_utilization"),
    "gpu.temperature": GpuKey("temp"),
    "gpu.fan_speed": GpuKey("fan_speed"),
    "gpu.memory.used": GpuKey("allocated_memory", MIB_TO_GIB),
    "gpu.memory.total": GpuKey("total_memory", MIB_TO_GIB),
    "gpu.memory.free": GpuKey("free_memory", MIB_TO_GIB),
    "gpu.power.draw": GpuKey("power"),
    "gpu.power.limit": GpuKey("power_limit"),
}
# Host and process metrics → (Trackio key, scale). Keyed by (name, memory state or "").
HOST_KEYS: dict[tuple[str, str], tuple[str, float]] = {
    ("system.memory.usage", "used"): ("memory/used", 1 / GIB),
    ("system.memory.usage", "free"): ("memory/free", 1 / GIB),
    ("system.memory.usage", "cached"): ("memory/cached", 1 / GIB),
    ("system.memory.limit", ""): ("memory/total", 1 / GIB),
    ("system.memory.utilization", "used"): ("memory/percent", 100),
    ("process.cpu.utilization", ""): ("process/cpu_utilization", 100),
    ("process.memory.usage", ""): ("process/memory_rss", 1 / GIB),
    ("process.memory.virtual", ""): ("process/memory_virtual", 1 / GIB),
    ("process.memory.utilization", ""): ("process/memory_percent", 100),
    ("process.thread.count", ""): ("process/threads", 1),
}
_TRAILING_INT = re.compile(r"(\d+)$")


def from_request(request: ExportMetricsServiceRequest) -> Batch:
    batch = Batch()
    scalar_points: list[Point] = []  # the points whose step, if any, is a step
    for i, resource_metrics, resource, run in placed(
        batch, request.resource_metrics, "resource_metrics", _point_count
    ):
        for j, scope_metrics in enumerate(resource_metrics.scope_metrics):
            for m, metric in enumerate(scope_metrics.metrics):
                where = f"resource_metrics[{i}].scope_metrics[{j}].metrics[{m}]"
                for n, point in _points(metric, run, resource.id, batch, where):
                    point.scope_name = scope_metrics.scope.name
                    point.scope_version = scope_metrics.scope.version
                    batch.points.append(point)
                    if why := steps.error(point.attributes.get(semconv.STEP)):
                        batch.warn(f"{where}.data_points[{n}]", f"{why}; it makes no metrics row")
                    else:
                        scalar_points.append(point)
    batch.scalars.extend(scalar_rows(scalar_points))
    return batch


def _point_count(resource_metrics: ResourceMetrics) -> int:
    return sum(
        len(getattr(metric, kind).data_points)
        for scope in resource_metrics.scope_metrics
        for metric in scope.metrics
        if (kind := metric.WhichOneof("data"))
    )


def _points(
    metric: Metric, run: Run, resource_id: str, batch: Batch, where: str
) -> list[tuple[int, Point]]:
    """The metric's points with their index in ``data_points``; those SQLite cannot hold
    are rejected into ``batch`` (so the indexes of the rest may skip)."""
    kind = metric.WhichOneof("data")
    if kind is None:
        return []
    data = getattr(metric, kind)
    temporality = getattr(data, "aggregation_temporality", 0)
    monotonic = getattr(data, "is_monotonic", False)
    points = []
    for d, dp in enumerate(data.data_points):
        point_where = f"{where}.data_points[{d}]"
        try:
            if error := _uint64_error(dp, kind):
                batch.reject(point_where, error)
                continue
            attrs = pdata.attributes(dp.attributes)
            point = Point(
                uid=digest(
                    resource_id,
                    metric.name,
                    canonical(attrs),
                    dp.start_time_unix_nano,
                    dp.time_unix_nano,
                ),
                run=run,
                resource_id=resource_id,
                name=metric.name,
                description=metric.description,
                unit=metric.unit,
                type=kind,
                temporality=temporality,
                is_monotonic=monotonic,
                attributes=attrs,
                start_ns=dp.start_time_unix_nano,
                time_ns=dp.time_unix_nano,
                value=None,
            )
            if kind in ("gauge", "sum"):
                number = dp.WhichOneof("value")
                point.value = float(getattr(dp, number)) if number else None
            else:
                point.count, point.sum = dp.count, dp.sum
                if kind != "summary":
                    point.min = dp.min if dp.HasField("min") else None
                    point.max = dp.max if dp.HasField("max") else None
                point.buckets = _buckets(kind, dp)
            points.append((d, point))
        except Exception as exc:
            batch.fail(point_where, exc)
    return points


def _uint64_error(dp: Any, kind: str) -> str | None:
    """The first fixed64 column of a point past SQLite's signed 64-bit INTEGER, named."""
    fields = ("start_time_unix_nano", "time_unix_nano")
    for name in (*fields, "count") if kind not in ("gauge", "sum") else fields:
        if error := pdata.uint64_error(getattr(dp, name)):
            return f"{name} {error}"
    return None


def _buckets(kind: str, dp: Any) -> dict[str, Any]:
    """Bucket layout as JSON; a non-finite bound or quantile is written as Trackio writes
    non-finite floats (``"NaN"``, ``"Infinity"``), not refused by the encoder."""
    if kind == "histogram":
        bounds = [pdata.json_number(b) for b in dp.explicit_bounds]
        return {"bounds": bounds, "counts": list(dp.bucket_counts)}
    if kind == "exponential_histogram":
        return {
            "scale": dp.scale,
            "zero_count": dp.zero_count,
            "positive": {"offset": dp.positive.offset, "counts": list(dp.positive.bucket_counts)},
            "negative": {"offset": dp.negative.offset, "counts": list(dp.negative.bucket_counts)},
        }
    quantiles = [
        {"q": pdata.json_number(q.quantile), "value": pdata.json_number(q.value)}
        for q in dp.quantile_values
    ]
    return {"quantiles": quantiles}


def scalar_rows(points: list[Point]) -> list[Scalars]:
    """Group points into one row per (run, step or collection time)."""
    groups: dict[tuple[str, int | None, int], list[Point]] = defaultdict(list)
    for point in points:
        groups[
            (point.run.run_id, steps.of(point.attributes.get(semconv.STEP)), point.time_ns)
        ].append(point)
    rows = []
    for (_, step, time_ns), members in groups.items():
        values = _values(members)
        if values:
            log_id = digest(*sorted(p.uid for p in members))
            rows.append(Scalars(log_id, members[0].run, time_ns, values, step))
    return rows


def _values(points: list[Point]) -> dict[str, Any]:
    """Trackio keys → numbers. Sums and histogram counts add up across merged series."""
    totals: dict[str, float] = {}
    hist: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    cpus: dict[str, float] = defaultdict(float)
    for p in points:
        if p.name == "system.cpu.utilization":
            if p.attributes.get("cpu.mode") != "idle" and p.value is not None:
                cpus[str(p.attributes.get("cpu.logical_number", 0))] += p.value * 100
            continue
        key, scale = _key(p)
        if key is None:
            continue
        if p.value is not None:
            value = p.value * scale
            totals[key] = totals.get(key, 0.0) + value if p.type == "sum" else value
        elif p.count:
            hist[key][0] += p.count
            hist[key][1] += p.sum or 0.0
    for cpu, util in cpus.items():
        totals[f"cpu/{cpu}/utilization"] = util
    if cpus:
        totals["cpu/utilization"] = sum(cpus.values()) / len(cpus)
    for key, (count, total) in hist.items():
        totals[f"{key}/count"] = count
        totals[f"{key}/mean"] = total / count
    return {k: pdata.json_number(v) for k, v in totals.items()}


def _key(p: Point) -> tuple[str | None, float]:
    gpu = GPU_KEYS.get(p.name)
    if callable(gpu):
        gpu = gpu(p.attributes)
    if gpu is not None and _is_gpu(p):
        return f"gpu/{_gpu_index(p.attributes)}/{gpu.suffix}", gpu.scale
    if gpu is None and p.name in GPU_KEYS:  # a GPU metric whose attributes select nothing
        return None, 1.0
    host = HOST_KEYS.get((p.name, str(p.attributes.get("system.memory.state", ""))))
    if host:
        return host
    if p.name.startswith(STANDARD_NAMESPACES):
        key = p.name.replace(".", "/")
        dims = [str(p.attributes[d]) for d in DIMENSIONS if d in p.attributes]
        return "/".join([key, *dims]), 1.0
    return p.name, 1.0  # a user metric keeps its own name, stepped or not


def _is_gpu(p: Point) -> bool:
    if p.name.startswith(("hw.gpu.", "gpu.", "trackio.gpu.")):
        return True
    return (
        p.attributes.get("hw.type") == "gpu"
        or "gpu.index" in p.attributes
        or (str(p.attributes.get("hw.parent", "")).lower().startswith("gpu"))
    )


def _gpu_index(attrs: dict[str, Any]) -> str:
    """``trackio.gpu.index`` / ``gpu.index``, else the trailing number of ``hw.id``, else hw.id."""
    for name in (semconv.GPU_INDEX, "gpu.index"):
        if name in attrs:
            return str(attrs[name])
    hw_id = str(attrs.get("hw.id", attrs.get("hw.parent", "0")))
    match = _TRAILING_INT.search(hw_id)
    return match.group(1) if match and len(match.group(1)) < 4 else re.sub(r"[^\w.-]", "_", hw_id)
