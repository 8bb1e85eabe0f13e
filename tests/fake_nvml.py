"""A fake ``pynvml`` (nvidia-ml-py) for a machine without a GPU.

It mimics the real module where ``trackio_otel.sdk.gpu`` touches it: the same function
names, return shapes (``.gpu``/``.memory``, ``.used``/``.total``/``.free``, ``.pid``/
``.usedGpuMemory``), units (mW, mJ, MHz, °C, bytes) and error hierarchy (``NVMLError``
whose ``__new__`` maps a code to a generated ``NVMLError_<Name>`` subclass, as nvidia-ml-py
does). Install it with ``FakeNvml(...).install(monkeypatch)``.
"""

from __future__ import annotations

import string
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
ERRORS_BY_NAME = {  # constant: (code, nvidia-ml-py's message)
    "NVML_ERROR_UNINITIALIZED": (1, "Uninitialized"),
    "NVML_ERROR_NOT_SUPPORTED": (3, "Not Supported"),
    "NVML_ERROR_NO_PERMISSION": (4, "Insufficient Permissions"),
    "NVML_ERROR_NOT_FOUND": (6, "Not Found"),
    "NVML_ERROR_DRIVER_NOT_LOADED": (9, "Driver Not Loaded"),
    "NVML_ERROR_LIBRARY_NOT_FOUND": (12, "NVML Shared Library Not Found"),
    "NVML_ERROR_GPU_IS_LOST": (15, "GPU is lost"),
    "NVML_ERROR_UNKNOWN": (999, "Unknown Error"),
}
ERROR_CODES = {name: code for name, (code, _) in ERRORS_BY_NAME.items()}
MESSAGES = dict(ERRORS_BY_NAME.values())


class NVMLError(Exception):
    """As in nvidia-ml-py: ``NVMLError(code)`` builds the matching subclass, ``.value`` = code."""

    _valClassMapping: dict[int, type[NVMLError]] = {}

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value: int) -> None:
        super().__init__(value)

    def __str__(self) -> str:
        return MESSAGES.get(self.value, f"NVML Error with code {self.value}")


def _error_classes() -> dict[str, type[NVMLError]]:
    classes = {}
    for const, code in ERROR_CODES.items():
        words = string.capwords(const.replace("NVML_ERROR_", ""), "_").replace("_", "")
        cls = type(f"NVMLError_{words}", (NVMLError,), {})
        NVMLError._valClassMapping[code] = cls
        classes[cls.__name__] = cls
    return classes


ERRORS = _error_classes()


@dataclass
class FakeGpu:
    """One device's readings, in NVML's own units. ``unsupported``: NVML function names
    that raise NotSupported on this device; ``lost``: every call raises GpuIsLost."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    util_gpu: int = 87
    util_memory: int = 41
    memory_used: int = 30 << 30
    memory_total: int = 80 << 30
    power_mw: int = 312_500
    power_limit_mw: int = 700_000
    energy_mj: int = 9_000_000
    temperature: int = 64
    sm_clock: int = 1980
    memory_clock: int = 2619
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    unsupported: set[str] = field(default_factory=set)
    lost: bool = False


@dataclass
class FakeNvml:
    gpus: list[FakeGpu]
    init_error: int | None = None
    """An NVML error code for ``nvmlInit`` to raise (12 = LibraryNotFound: no driver)."""
    calls: int = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
        module = self.module()
        monkeypatch.setitem(sys.modules, "pynvml", module)
        return module

    def module(self) -> types.ModuleType:
        m = types.ModuleType("pynvml")
        m.__dict__.update(ERROR_CODES)
        m.__dict__.update(ERRORS)
        m.NVMLError = NVMLError
        m.NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
        m.NVML_CLOCK_SM = NVML_CLOCK_SM
        m.NVML_CLOCK_MEM = NVML_CLOCK_MEM
        for name in dir(self):
            if name.startswith("nvml"):
                setattr(m, name, getattr(self, name))
        return m

    # --- the NVML API --------------------------------------------------------------------
    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        if not 0 <= index < len(self.gpus):
            raise NVMLError(ERROR_CODES["NVML_ERROR_NOT_FOUND"])
        return self.gpus[index]

    def nvmlDeviceGetUUID(self, h: FakeGpu) -> str:
        return self._read(h, "nvmlDeviceGetUUID", h.uuid)

    def nvmlDeviceGetName(self, h: FakeGpu) -> str:
        return self._read(h, "nvmlDeviceGetName", h.name)

    def nvmlDeviceGetUtilizationRates(self, h: FakeGpu) -> Any:
        rates = types.SimpleNamespace(gpu=h.util_gpu, memory=h.util_memory)
        return self._read(h, "nvmlDeviceGetUtilizationRates", rates)

    def nvmlDeviceGetMemoryInfo(self, h: FakeGpu) -> Any:
        info = types.SimpleNamespace(
            used=h.memory_used, total=h.memory_total, free=h.memory_total - h.memory_used
        )
        return self._read(h, "nvmlDeviceGetMemoryInfo", info)

    def nvmlDeviceGetPowerUsage(self, h: FakeGpu) -> int:
        return self._read(h, "nvmlDeviceGetPowerUsage", h.power_mw)

    def nvmlDeviceGetEnforcedPowerLimit(self, h: FakeGpu) -> int:
        return self._read(h, "nvmlDeviceGetEnforcedPowerLimit", h.power_limit_mw)

    def nvmlDeviceGetTotalEnergyConsumption(self, h: FakeGpu) -> int:
        return self._read(h, "nvmlDeviceGetTotalEnergyConsumption", h.energy_mj)

    def nvmlDeviceGetTemperature(self, h: FakeGpu, sensor: int) -> int:
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(ERROR_CODES["NVML_ERROR_NOT_SUPPORTED"])
        return self._read(h, "nvmlDeviceGetTemperature", h.temperature)

    def nvmlDeviceGetClockInfo(self, h: FakeGpu, clock: int) -> int:
        value = {NVML_CLOCK_SM: h.sm_clock, NVML_CLOCK_MEM: h.memory_clock}[clock]
        return self._read(h, "nvmlDeviceGetClockInfo", value)

    def nvmlDeviceGetComputeRunningProcesses(self, h: FakeGpu) -> list[Any]:
        procs = [types.SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in h.processes]
        return self._read(h, "nvmlDeviceGetComputeRunningProcesses", procs)

    def _read(self, h: FakeGpu, function: str, value: Any) -> Any:
        self.calls += 1
        if h.lost:
            raise NVMLError(ERROR_CODES["NVML_ERROR_GPU_IS_LOST"])
        if function in h.unsupported:
            raise NVMLError(ERROR_CODES["NVML_ERROR_NOT_SUPPORTED"])
        return value
