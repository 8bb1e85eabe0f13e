"""GPU and process sampling: OTel observable instruments → OTLP → Trackio's System keys.

There is no GPU here, so NVML is ``tests.fake_nvml`` (the one fake); the rest is real:
the OTel SDK MeterProvider and OTLP gRPC exporter, the collector, Trackio's reader. The
real nvidia-ml-py is also exercised: on this machine it raises NVMLError_LibraryNotFound.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from trackio.sqlite_storage import SQLiteStorage

from tests.fake_nvml import FakeGpu, FakeNvml
from trackio_otel import semconv
from trackio_otel.sdk import gpu

GIB = 1 << 30


@pytest.fixture(autouse=True)
def fresh_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts before nvmlInit and with every GPU visible."""
    monkeypatch.setattr(gpu, "_init", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def two_gpus(**second: object) -> FakeNvml:
    return FakeNvml(
        [
            FakeGpu("GPU-0a0a", processes=[(os.getpid(), 5 * GIB), (1, GIB)]),
            FakeGpu("GPU-1b1b", memory_used=12 * GIB, **second),  # type: ignore[arg-type]
        ]
    )


def land(endpoint: str, project: str, collections: int = 1, between=None) -> list[dict]:
    """Sample ``collections`` times through a real OTLP exporter; Trackio's system rows."""
    run_id = uuid.uuid4().hex
    resource = Resource.create(
        {semconv.PROJECT: project, semconv.RUN_NAME: "gpu-run", semconv.RUN_ID: run_id}
    )
    exporter = OTLPMetricExporter(endpoint=endpoint, insecure=True)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    gpu.start_sampling(provider)
    for _ in range(collections - 1):
        assert provider.force_flush()
        if between:
            between()
    provider.shutdown()  # the last collection and export
    rows = SQLiteStorage.get_system_logs(project, "gpu-run", run_id=run_id)
    assert len(rows) == collections, rows
    return rows


def points(reader: InMemoryMetricReader) -> dict[str, list]:
    out: dict[str, list] = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def test_two_gpus_land_under_trackio_gpu_keys(endpoint, project, monkeypatch):
    fake = two_gpus()
    fake.install(monkeypatch)

    def spend_energy() -> None:
        fake.gpus[0].energy_mj += 5_000

    first, second = land(endpoint, project, collections=2, between=spend_energy)
    assert first["gpu/0/utilization"] == 87
    assert first["gpu/0/memory_utilization"] == 41
    assert first["gpu/0/allocated_memory"] == 30
    assert first["gpu/1/allocated_memory"] == 12
    assert first["gpu/1/total_memory"] == 80
    assert first["gpu/1/memory_usage"] == 12 / 80
    assert first["gpu/0/power"] == 312.5
    assert first["gpu/0/power_limit"] == 700
    assert first["gpu/0/temp"] == 64
    assert first["gpu/0/sm_clock"] == 1980
    assert first["gpu/1/memory_clock"] == 2619
    assert first["gpu/0/process_memory"] == 5  # this PID only, in GiB
    assert "gpu/1/process_memory" not in first  # not running there
    assert (first["gpu/0/energy_consumed"], second["gpu/0/energy_consumed"]) == (0, 5)
    assert second["gpu/1/energy_consumed"] == 0
    for row in (first, second):
        assert row["process/memory_rss"] > 0
        assert row["process/threads"] >= 1
        assert 0 <= row["process/cpu_utilization"] <= 100


def test_not_supported_power_omits_only_power(endpoint, project, monkeypatch):
    two_gpus(unsupported={"nvmlDeviceGetPowerUsage"}).install(monkeypatch)
    (row,) = land(endpoint, project)
    assert "gpu/1/power" not in row
    assert row["gpu/0/power"] == 312.5
    gpu1 = {k.removeprefix("gpu/1/") for k in row if k.startswith("gpu/1/")}
    gpu0 = {k.removeprefix("gpu/0/") for k in row if k.startswith("gpu/0/")}
    assert gpu1 == gpu0 - {"power", "process_memory"}


def test_lost_gpu_stops_alone(monkeypatch, caplog):
    fake = two_gpus()
    fake.install(monkeypatch)
    reader = InMemoryMetricReader()
    gpu.start_sampling(MeterProvider(metric_readers=[reader]))
    fake.gpus[0].lost = True
    with caplog.at_level(logging.WARNING, logger=gpu.__name__):
        first, second = points(reader), points(reader)
    for got in (first, second):
        ids = {p.attributes["hw.id"] for name, ps in got.items() if name != "process.cpu.time"
               for p in ps if "hw.id" in p.attributes}  # fmt: skip
        assert ids == {"GPU-1b1b"}
        assert "process.memory.usage" in got
    assert [r.getMessage() for r in caplog.records] == ["GPU GPU-0a0a is lost; its metrics stop"]


def test_cuda_visible_devices_selects_and_renumbers(monkeypatch):
    two_gpus().install(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    reader = InMemoryMetricReader()
    gpu.start_sampling(MeterProvider(metric_readers=[reader]))
    (point,) = points(reader)["hw.gpu.utilization"]
    assert point.attributes["hw.id"] == "GPU-1b1b"
    assert point.attributes[semconv.GPU_INDEX] == 0
    assert point.attributes["hw.vendor"] == "nvidia"
    assert point.attributes["hw.gpu.task"] == "general"
    assert point.value == 0.87


def test_library_not_found_warns_once_and_process_metrics_land(endpoint, project, monkeypatch,
                                                               caplog):  # fmt: skip
    fake = FakeNvml([FakeGpu("GPU-0a0a")], init_error=12)
    fake.install(monkeypatch)
    with caplog.at_level(logging.WARNING, logger=gpu.__name__):
        gpu.start_sampling(MeterProvider(metric_readers=[InMemoryMetricReader()]))
        (row,) = land(endpoint, project)
    assert [r.getMessage() for r in caplog.records] == [
        "GPU metrics off (NVML unavailable: NVMLError_LibraryNotFound: "
        "NVML Shared Library Not Found); process metrics go on"
    ]
    assert fake.calls == 0
    assert not [k for k in row if k.startswith("gpu/")]
    assert row["process/memory_rss"] > 0


def _real_nvml_works() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        return True
    except Exception:
        return False


REAL_GPU = _real_nvml_works()


@pytest.mark.skipif(REAL_GPU, reason="this machine has a working NVML")
def test_real_nvml_without_gpu_warns_once(endpoint, project, monkeypatch, caplog):
    import pynvml

    monkeypatch.setitem(sys.modules, "pynvml", pynvml)
    with caplog.at_level(logging.WARNING, logger=gpu.__name__):
        (row,) = land(endpoint, project)
        assert gpu.nvml() is None
    (record,) = caplog.records
    assert "NVMLError_LibraryNotFound" in record.getMessage()
    assert row["process/memory_rss"] > 0


@pytest.mark.skipif(not REAL_GPU, reason="no working NVML here")
def test_real_gpu_lands(endpoint, project, monkeypatch):
    import pynvml

    monkeypatch.setitem(sys.modules, "pynvml", pynvml)
    (row,) = land(endpoint, project)
    assert "gpu/0/total_memory" in row and "gpu/0/utilization" in row, row


def test_process_cpu_utilization_sees_work(monkeypatch):
    FakeNvml([], init_error=12).install(monkeypatch)
    reader = InMemoryMetricReader()
    gpu.start_sampling(MeterProvider(metric_readers=[reader]))
    start = time.process_time()
    while time.process_time() - start < 0.1:
        pass
    (point,) = points(reader)["process.cpu.utilization"]
    assert 0 < point.value <= 1


def test_process_cpu_utilization_is_not_read_off_clock_ticks(monkeypatch):
    """Collections milliseconds apart (a run's last one) stay within 0-100%: CPU time
    counted in 10 ms ticks read one tick over 3 ms as 167% per CPU."""
    FakeNvml([], init_error=12).install(monkeypatch)
    reader = InMemoryMetricReader()
    gpu.start_sampling(MeterProvider(metric_readers=[reader]))
    values = []
    for _ in range(30):
        t = time.process_time()
        while time.process_time() - t < 0.003:  # a third of a tick: a third of them see one
            pass
        values += [p.value for p in points(reader)["process.cpu.utilization"]]
    assert len(values) == 30 and all(0 <= v <= 1 for v in values), values


def test_every_collection_reads_each_gpu_once(monkeypatch):
    """Repeated collections neither drop nor repeat a device (the cost per collection is
    measured by ``bench/bench_sdk.py``, beside the raw OTel SDK's)."""
    two_gpus().install(monkeypatch)
    reader = InMemoryMetricReader()
    gpu.start_sampling(MeterProvider(metric_readers=[reader]))
    counts = [len(points(reader)["hw.gpu.utilization"]) for _ in range(50)]
    assert counts == [2] * 50
