"""GPU (NVML) and process telemetry as OTel observable instruments.

The OTel SDK's metric reader calls the callbacks at its own cadence, so there is no
sampling thread here. Names follow the OTel hardware conventions (``hw.gpu.*``,
``hw.power``/``hw.temperature``/``hw.energy`` with ``hw.type=gpu``) and add the trackio
names for what they lack (clocks, per-process memory, index); the collector maps all of
them to Trackio's own ``gpu/<i>/...`` keys.

NVML is optional: without nvidia-ml-py, a driver or a GPU, one warning is logged and only
the process metrics are registered. Every field is read on its own, because
``NotSupported`` is common (power on some SKUs, MIG instances); a failed read omits the
point, never reports 0. A device that raises ``GpuIsLost`` is dropped, the others go on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from trackio_otel import semconv
from trackio_otel.sdk.process import ProcessSampler

log = logging.getLogger(__name__)
METER_NAME = "trackio_otel.sdk"

_init_lock = threading.Lock()
_init: tuple[ModuleType, str | None] | None = None
"""(the pynvml module nvmlInit ran on, the failure or None): nvmlInit runs once."""


def nvml() -> ModuleType | None:
    """The initialised ``pynvml`` module, or None (after one warning) when NVML is unusable."""
    global _init
    try:
        import pynvml
    except ImportError:
        pynvml = None
    with _init_lock:
        if _init is not None and _init[0] is pynvml:
            return pynvml if _init[1] is None else None
        if pynvml is None:
            error: str | None = "nvidia-ml-py is not installed"
        else:
            try:
                pynvml.nvmlInit()
                error = None
            except pynvml.NVMLError as exc:
                error = f"{type(exc).__name__}: {exc}"
        _init = (pynvml, error)  # type: ignore[assignment]
    if error is not None:
        log.warning("GPU metrics off (NVML unavailable: %s); process metrics go on", error)
        return None
    return pynvml


@dataclass(slots=True)
class Device:
    handle: Any
    attributes: dict[str, str | int]
    lost: bool = False
    energy_base_mj: int | None = None


def visible_indices(count: int) -> list[int]:
    """NVML (physical) index of each logical GPU: integer ``CUDA_VISIBLE_DEVICES`` entries
    select and reorder devices, as Trackio does; anything else means all of them."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible:
        try:
            return [i for i in (int(x) for x in visible.split(",") if x.strip()) if i < count]
        except ValueError:
            pass
    return list(range(count))


def devices(nv: ModuleType) -> list[Device]:
    try:
        count = nv.nvmlDeviceGetCount()
    except nv.NVMLError as exc:
        log.warning("GPU metrics off (nvmlDeviceGetCount: %s)", exc)
        return []
    found = []
    for logical, physical in enumerate(visible_indices(count)):
        try:
            handle = nv.nvmlDeviceGetHandleByIndex(physical)
            uuid = nv.nvmlDeviceGetUUID(handle)
        except nv.NVMLError as exc:
            log.warning("GPU %d skipped (%s)", physical, exc)
            continue
        attrs: dict[str, str | int] = {
            "hw.id": _text(uuid),
            "hw.vendor": "nvidia",
            semconv.GPU_INDEX: logical,
        }
        with contextlib.suppress(nv.NVMLError):
            attrs["hw.name"] = _text(nv.nvmlDeviceGetName(handle))
        found.append(Device(handle, attrs))
    return found


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


Reading = Callable[[Device], float | None]


class GpuSampler:
    """Registers one observable instrument per GPU field on ``meter``."""

    def __init__(self, nv: ModuleType, meter: Any, gpus: list[Device]) -> None:
        self.active = True
        self._nv = nv
        self._gpus = gpus
        self._pid = os.getpid()
        util = nv.nvmlDeviceGetUtilizationRates
        memory = nv.nvmlDeviceGetMemoryInfo
        gpu = {"hw.type": "gpu"}
        instruments: list[tuple[str, str, str, Reading, dict[str, str], str]] = [
            ("gauge", "hw.gpu.utilization", "1", lambda d: util(d.handle).gpu / 100,
             {"hw.gpu.task": "general"}, "Fraction of time a kernel was running."),
            ("gauge", semconv.GPU_MEMORY_BUSY, "1", lambda d: util(d.handle).memory / 100,
             {}, "Fraction of time device memory was being read or written."),
            ("updown", "hw.gpu.memory.usage", "By", lambda d: memory(d.handle).used,
             {}, "Device memory in use."),
            ("updown", "hw.gpu.memory.limit", "By", lambda d: memory(d.handle).total,
             {}, "Device memory size."),
            ("gauge", "hw.gpu.memory.utilization", "1", self._memory_fraction,
             {}, "Fraction of device memory in use."),
            ("gauge", "hw.power", "W", lambda d: nv.nvmlDeviceGetPowerUsage(d.handle) / 1000,
             gpu, "Power draw."),
            ("gauge", semconv.GPU_POWER_LIMIT, "W",
             lambda d: nv.nvmlDeviceGetEnforcedPowerLimit(d.handle) / 1000,
             {}, "Enforced power limit."),
            ("gauge", "hw.temperature", "Cel",
             lambda d: nv.nvmlDeviceGetTemperature(d.handle, nv.NVML_TEMPERATURE_GPU),
             gpu, "GPU core temperature."),
            ("counter", "hw.energy", "J", self._energy, gpu,
             "Energy used since sampling started."),
            ("gauge", semconv.GPU_SM_CLOCK, "MHz",
             lambda d: nv.nvmlDeviceGetClockInfo(d.handle, nv.NVML_CLOCK_SM),
             {}, "SM clock."),
            ("gauge", semconv.GPU_MEMORY_CLOCK, "MHz",
             lambda d: nv.nvmlDeviceGetClockInfo(d.handle, nv.NVML_CLOCK_MEM),
             {}, "Memory clock."),
            ("updown", semconv.GPU_PROCESS_MEMORY, "By", self._process_memory,
             {}, "Device memory this process holds (NVML sees host PIDs only)."),
        ]  # fmt: skip
        create = {
            "gauge": meter.create_observable_gauge,
            "updown": meter.create_observable_up_down_counter,
            "counter": meter.create_observable_counter,
        }
        for kind, name, unit, read, extra, description in instruments:
            create[kind](name, [self._callback(read, extra)], unit=unit, description=description)

    def _callback(
        self, read: Reading, extra: dict[str, str]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            if not self.active:
                return []
            out = []
            for d in self._gpus:
                if d.lost:
                    continue
                try:
                    value = read(d)
                except self._nv.NVMLError_GpuIsLost:
                    d.lost = True
                    log.warning("GPU %s is lost; its metrics stop", d.attributes["hw.id"])
                    continue
                except self._nv.NVMLError:
                    continue
                if value is not None:
                    out.append(Observation(value, {**d.attributes, **extra}))
            return out

        return callback

    def _memory_fraction(self, d: Device) -> float | None:
        info = self._nv.nvmlDeviceGetMemoryInfo(d.handle)
        return info.used / info.total if info.total else None

    def _energy(self, d: Device) -> float:
        mj = self._nv.nvmlDeviceGetTotalEnergyConsumption(d.handle)
        if d.energy_base_mj is None:
            d.energy_base_mj = mj
        return (mj - d.energy_base_mj) / 1000

    def _process_memory(self, d: Device) -> int | None:
        used = [
            p.usedGpuMemory
            for p in self._nv.nvmlDeviceGetComputeRunningProcesses(d.handle)
            if p.pid == self._pid and p.usedGpuMemory is not None
        ]
        return sum(used) if used else None


@dataclass(slots=True)
class Sampling:
    """What ``start_sampling`` registered; ``stop()`` makes its callbacks report nothing
    (OTel instruments cannot be unregistered)."""

    process: ProcessSampler
    gpu: GpuSampler | None

    def stop(self) -> None:
        self.process.active = False
        if self.gpu is not None:
            self.gpu.active = False


def start_sampling(meter_provider: MeterProvider) -> Sampling:
    """Register process metrics, and GPU metrics when NVML works, on ``meter_provider``.

    Values are read when the provider's metric reader collects (e.g. every second with
    ``PeriodicExportingMetricReader(export_interval_millis=1000)``).
    """
    meter = meter_provider.get_meter(METER_NAME)
    process = ProcessSampler(meter)
    nv = nvml()
    gpus = devices(nv) if nv is not None else []
    return Sampling(process, GpuSampler(nv, meter, gpus) if nv is not None and gpus else None)
