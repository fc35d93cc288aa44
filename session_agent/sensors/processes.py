"""The top consumers of the desktop: the few processes using the most CPU and the most memory.

One read of ``/proc/<pid>/stat`` per process and sample (name, parent, CPU ticks and resident pages
are all in it; psutil would read two or three files per process, ~10 ms a sample for 85 processes).
A process's CPU % is over the interval since the previous sample. Only the name (comm), pid and the
app a process belongs to are reported: never command lines, arguments or window titles.
"""

from __future__ import annotations

import heapq
import os
import time
from dataclasses import dataclass

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.sensors.health import DesktopHealth
from session_agent.sensors.window import MAX_NAME_CHARS

# How far up the parent chain an app's process is looked for (a browser's renderers sit 2-3 deep).
_MAX_ANCESTRY = 8
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Stat:
    pid: int
    name: str
    ppid: int
    ticks: int  # user + system CPU time
    rss_bytes: int


def read_stat(pid: int) -> Stat | None:
    """The process's /proc stat line, or None when it is gone."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        line = os.read(fd, 4096)  # raw reads: a Python file object would double the cost
    except OSError:
        return None
    finally:
        os.close(fd)
    # The name is between the first "(" and the last ")" (it may hold both); fields follow from 3 on.
    name = line[line.find(b"(") + 1 : line.rfind(b")")].decode("utf-8", "replace")
    fields = line[line.rfind(b")") + 2 :].split()
    try:
        ticks = int(fields[11]) + int(fields[12])
        return Stat(pid, name, int(fields[1]), ticks, int(fields[21]) * _PAGE_BYTES)
    except (IndexError, ValueError):
        return None


class ProcessTable:
    def __init__(self, health: DesktopHealth, top: int) -> None:
        self._health = health
        self._top = top
        self._ticks: dict[int, int] = {}
        self._at = time.monotonic()
        self.count = 0

    def sample(self) -> tuple[list[pb.ProcessUsage], list[pb.ProcessUsage]]:
        """(top by CPU, top by RSS)."""
        now = time.monotonic()
        elapsed, self._at = max(now - self._at, 1e-3), now
        stats = [s for s in map(read_stat, _pids()) if s is not None]
        previous, self._ticks = self._ticks, {s.pid: s.ticks for s in stats}
        per_tick = 100.0 / _TICKS_PER_S / elapsed
        cpu = {s.pid: (s.ticks - previous.get(s.pid, s.ticks)) * per_tick for s in stats}
        self.count = len(stats)
        self._health.rss = {s.pid: s.rss_bytes for s in stats}
        parents = {s.pid: s.ppid for s in stats}
        by_cpu = heapq.nlargest(self._top, stats, key=lambda s: cpu[s.pid])
        by_rss = heapq.nlargest(self._top, stats, key=lambda s: s.rss_bytes)
        return (
            [self._usage(s, cpu[s.pid], parents) for s in by_cpu if cpu[s.pid] > 0],
            [self._usage(s, cpu[s.pid], parents) for s in by_rss if s.rss_bytes > 0],
        )

    def _usage(self, stat: Stat, cpu: float, parents: dict[int, int]) -> pb.ProcessUsage:
        return pb.ProcessUsage(
            pid=stat.pid,
            name=stat.name[:MAX_NAME_CHARS],
            app_id=self.app_of(stat.pid, parents),
            cpu_percent=cpu,
            rss_bytes=stat.rss_bytes,
        )

    def app_of(self, pid: int, parents: dict[int, int]) -> str:
        """The app whose window-owning process is ``pid`` or one of its ancestors ("" if none)."""
        apps = self._health.apps
        for _ in range(_MAX_ANCESTRY):
            if pid in apps:
                return apps[pid]
            pid = parents.get(pid, 0)
            if pid <= 1:
                break
        return ""


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
