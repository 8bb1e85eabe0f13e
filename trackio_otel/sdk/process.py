"""This process's CPU and memory as OTel observable instruments (no psutil).

CPU time comes from ``os.times`` (portable); RSS, virtual size and thread count from
``/proc/self/stat`` (Linux). Where ``/proc`` is missing those three are omitted rather
than guessed (``ru_maxrss`` is the peak, not the current RSS).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from opentelemetry.metrics import CallbackOptions, Meter, Observation

STAT = Path("/proc/self/stat")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def cpu_count() -> int:
    """CPUs this process may run on: the denominator of ``process.cpu.utilization``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_seconds() -> tuple[float, float]:
    t = os.times()
    return t.user, t.system


def _stat() -> tuple[int, int, int] | None:
    """(threads, virtual bytes, resident bytes) from /proc/self/stat, None off Linux."""
    try:
        raw = STAT.read_bytes()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()  # the command name may hold spaces
    return int(fields[17]), int(fields[20]), int(fields[21]) * PAGE_SIZE


class ProcessSampler:
    """Registers ``process.cpu.utilization``, ``process.cpu.time``, ``process.memory.usage``,
    ``process.memory.virtual`` and ``process.thread.count`` on ``meter``."""

    def __init__(self, meter: Meter) -> None:
        self.active = True
        self._cpus = cpu_count()
        self._last = (time.process_time(), time.monotonic())
        meter.create_observable_gauge(
            "process.cpu.utilization",
            [self._utilization],
            unit="1",
            description="CPU time used since the last collection over wall time and CPUs.",
        )
        meter.create_observable_counter(
            "process.cpu.time", [self._cpu_time], unit="s", description="Total CPU seconds."
        )
        meter.create_observable_up_down_counter(
            "process.memory.usage",
            [self._stat_field(2)],
            unit="By",
            description="Resident set size.",
        )
        meter.create_observable_up_down_counter(
            "process.memory.virtual",
            [self._stat_field(1)],
            unit="By",
            description="Virtual memory size.",
        )
        meter.create_observable_up_down_counter(
            "process.thread.count",
            [self._stat_field(0)],
            unit="{thread}",
            description="Threads of this process.",
        )

    def _utilization(self, _: CallbackOptions) -> Iterable[Observation]:
        if not self.active:
            return []
        # process_time, not os.times: those count 10 ms ticks, and over the few milliseconds
        # before a run's last collection one tick read as several hundred percent.
        cpu, now = time.process_time(), time.monotonic()
        last_cpu, last_now = self._last
        self._last = (cpu, now)
        if now <= last_now:
            return []
        return [Observation((cpu - last_cpu) / (now - last_now) / self._cpus)]

    def _cpu_time(self, _: CallbackOptions) -> Iterable[Observation]:
        if not self.active:
            return []
        user, system = _cpu_seconds()
        return [
            Observation(user, {"cpu.mode": "user"}),
            Observation(system, {"cpu.mode": "system"}),
        ]

    def _stat_field(self, index: int) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            stat = _stat() if self.active else None
            return [] if stat is None else [Observation(stat[index])]

        return callback
