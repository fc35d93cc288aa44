"""CPU and memory of a running process, measured from outside with psutil and /proc."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

_SAMPLE_PERIOD_S = 0.2


@dataclass(frozen=True, slots=True)
class Usage:
    """What a process used over a measured interval; CPU % is of one core (200 % = two busy cores)."""

    cpu_percent: float
    rss_mean_mb: float
    rss_max_mb: float
    # USS: pages only this process maps (its heap and private data), which freeing it would return;
    # RSS also counts shared library pages that other processes on the machine use too.
    uss_mean_mb: float
    peak_rss_mb: float  # VmHWM: the high-water mark since the process started


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def peak_rss_mb(pid: int) -> float:
    """The process's resident-set high-water mark (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


class UsageMeter:
    """Measures CPU time (delta of cpu_times over wall time) and samples RSS and USS of one or more processes.

    The CPU figure is exact (kernel accounting), so the memory sampling thread only affects the memory means.
    """

    def __init__(self, pids: list[int]) -> None:
        self._processes = [psutil.Process(pid) for pid in pids]
        self._rss: list[int] = []
        self._uss: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="memory-sampler", daemon=True)
        self._cpu0 = 0.0
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._cpu0 = _cpu_seconds(self._processes)
        self._thread.start()

    def stop(self) -> Usage:
        cpu = _cpu_seconds(self._processes) - self._cpu0
        wall = time.monotonic() - self._t0
        self._stop.set()
        self._thread.join(timeout=5)
        rss = self._rss or [0]
        uss = self._uss or [0]
        peak = max((peak_rss_mb(p.pid) for p in self._processes if p.is_running()), default=0.0)
        return Usage(
            cpu_percent=100.0 * cpu / wall if wall > 0 else 0.0,
            rss_mean_mb=sum(rss) / len(rss) / 2**20,
            rss_max_mb=max(rss) / 2**20,
            uss_mean_mb=sum(uss) / len(uss) / 2**20,
            peak_rss_mb=peak,
        )

    def _sample(self) -> None:
        while not self._stop.wait(_SAMPLE_PERIOD_S):
            rss = uss = 0
            for process in self._processes:
                try:
                    memory = process.memory_full_info()  # reads smaps: the measured process pays nothing
                except psutil.NoSuchProcess:
                    continue
                rss += memory.rss
                uss += memory.uss
            self._rss.append(rss)
            self._uss.append(uss)
