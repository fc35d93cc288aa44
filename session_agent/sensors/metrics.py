"""System metrics sensor: one ``SystemMetrics`` sample every ``interval_s`` (1 s by default), handed
on every ``send_interval_s`` (2 s) in one go: each hand-over is a spool commit (an fsync) and a batch
on the stream. The top consumers are read every ``top_interval_s`` (3 s; a pass over /proc costs
~1.5 ms for 85 processes, the rest of a sample ~0.7 ms); the samples between carry none, and the
process count of the last pass.

CPU, load, disk space and I/O, network bytes and process counts come from psutil; memory and swap
from /proc/meminfo (psutil's virtual_memory() minus its buffers: total - available is the same "used");
swap paging and the OOM-kill counter from /proc/vmstat; the top consumers from one pass over /proc
(``processes.py``); the desktop probe and the link to the cloud from what the desktop sensor and the
sender last measured (``health.py``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import psutil

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.sensors.base import Emit, new_event
from session_agent.sensors.health import DesktopHealth
from session_agent.sensors.processes import ProcessTable

_VMSTAT_KEYS = ("pswpin", "pswpout", "oom_kill")
_MEMINFO_KEYS = ("MemTotal", "MemAvailable", "SwapTotal", "SwapFree")


def read_vmstat(path: str = "/proc/vmstat") -> dict[str, int]:
    """The counters of /proc/vmstat the diagnostics use (missing ones are 0)."""
    found = dict.fromkeys(_VMSTAT_KEYS, 0)
    try:
        with open(path, encoding="ascii") as lines:
            for line in lines:
                key, _, value = line.partition(" ")
                if key in found:
                    found[key] = int(value)
    except OSError:
        pass
    return found


def read_meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    """Memory and swap totals, in bytes (one read of /proc/meminfo: psutil reads it once per call)."""
    found = dict.fromkeys(_MEMINFO_KEYS, 0)
    try:
        with open(path, encoding="ascii") as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key in found:
                    found[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return found


class MetricsSensor:
    name = "system_metrics"

    def __init__(
        self,
        emit: Emit,
        *,
        interval_s: float,
        spool_depth: Callable[[], int],
        send_interval_s: float = 0.0,
        disk_path: str = "/",
        health: DesktopHealth | None = None,
        top_processes: int = 3,
        top_interval_s: float = 0.0,
    ) -> None:
        self._emit = emit
        self._interval_s = interval_s
        self._send_interval_s = send_interval_s
        self._spool_depth = spool_depth
        self._disk_path = disk_path
        self._health = health or DesktopHealth()
        self._processes = ProcessTable(self._health, top_processes) if top_processes else None
        self._top_interval_s = top_interval_s
        self._next_top = 0.0

    def run(self, stop: threading.Event) -> None:
        psutil.cpu_percent(interval=None)  # the first call only sets the baseline of the next one
        if self._processes is not None:
            self._processes.sample()  # likewise for each process's CPU %
        held: list[pb.Event] = []
        next_send = time.monotonic() + self._send_interval_s
        while not stop.wait(self._interval_s):
            held.append(self.sample())
            if time.monotonic() >= next_send - self._interval_s / 2:
                for event in held:
                    self._emit(event)
                held.clear()
                next_send = time.monotonic() + self._send_interval_s
        for event in held:
            self._emit(event)

    def sample(self) -> pb.Event:
        event = new_event()
        memory = read_meminfo()
        disk = psutil.disk_usage(self._disk_path)
        io = psutil.disk_io_counters()
        net = psutil.net_io_counters()
        vmstat = read_vmstat()
        metrics = event.metrics
        metrics.cpu_percent = psutil.cpu_percent(interval=None)
        metrics.memory_used_bytes = memory["MemTotal"] - memory["MemAvailable"]
        metrics.memory_total_bytes = memory["MemTotal"]
        metrics.swap_used_bytes = memory["SwapTotal"] - memory["SwapFree"]
        metrics.swap_total_bytes = memory["SwapTotal"]
        metrics.swap_in_pages = vmstat["pswpin"]
        metrics.swap_out_pages = vmstat["pswpout"]
        metrics.oom_kills = vmstat["oom_kill"]
        metrics.load_1m, metrics.load_5m, _ = os.getloadavg()
        metrics.disk_used_percent = disk.percent
        metrics.disk_free_bytes = disk.free
        if io is not None:
            metrics.disk_read_bytes = io.read_bytes
            metrics.disk_write_bytes = io.write_bytes
        if net is not None:
            metrics.net_rx_bytes = net.bytes_recv
            metrics.net_tx_bytes = net.bytes_sent
        metrics.spool_depth = self._spool_depth()
        metrics.cloud_rtt_ms = self._health.link.take_rtt_ms()
        metrics.unacked_ms = self._health.link.unacked_ms()
        metrics.desktop_probe_ms = self._health.probe_ms
        if self._processes is not None and time.monotonic() >= self._next_top - self._interval_s / 2:
            self._next_top = time.monotonic() + self._top_interval_s
            top_cpu, top_memory = self._processes.sample()
            metrics.top_cpu.extend(top_cpu)
            metrics.top_memory.extend(top_memory)
        metrics.process_count = self._processes.count if self._processes else len(psutil.pids())
        return event
