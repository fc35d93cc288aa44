"""What the ops sensors share across threads: the desktop's apps by pid, the newest desktop probe, the
link to the cloud, and the logon clock.

Written by one sensor or the sender, read by another (the metrics sensor puts most of it into each
``SystemMetrics`` sample); every field is a single reference swapped whole, so reads need no lock.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.sensors.base import Emit, new_event

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


class LinkStats:
    """The agent's stream to the cloud, as the sender sees it."""

    def __init__(self) -> None:
        self._rtt_ms = 0.0  # the slowest since the last sample
        self._fresh = False
        self._reported_ms = 0.0
        self.oldest_unacked: Callable[[], float | None] = lambda: None  # monotonic send time

    def acked(self, rtt_s: float) -> None:
        self._rtt_ms = max(self._rtt_ms, rtt_s * 1000) if self._fresh else rtt_s * 1000
        self._fresh = True

    def take_rtt_ms(self) -> float:
        """The slowest send-to-Ack time since the last call; with no Ack since, the one reported last.

        Routine samples go out together every few seconds (``send_policy``), so most samples see no Ack
        of their own: a slow link must read slow in each of them, not only in one sample of ten.
        """
        if self._fresh:
            self._reported_ms, self._fresh = self._rtt_ms, False
        return self._reported_ms

    def unacked_ms(self) -> float:
        sent = self.oldest_unacked()
        return 0.0 if sent is None else max(0.0, (time.monotonic() - sent) * 1000)


class LogonClock:
    """Emits each logon phase once, timed from the start of the session's leader process."""

    def __init__(self, emit: Emit | None = None) -> None:
        self.emit = emit
        self._reached: set[int] = set()
        # The session leader's start, else this process's (both on the boot clock).
        self.started_s = next(
            (age for pid in (os.getsid(0), os.getpid()) if (age := started_s(pid)) is not None),
            since_boot_s(),
        )

    def reached(self, phase: pb.LogonPhase.Phase.ValueType) -> None:
        if phase in self._reached or self.emit is None:
            return
        self._reached.add(phase)
        event = new_event()
        event.logon.phase = phase
        event.logon.since_logon_ms = max(0, int((since_boot_s() - self.started_s) * 1000))
        self.emit(event)


class DesktopHealth:
    """Shared by the sensors of one agent."""

    def __init__(self, emit: Emit | None = None) -> None:
        # pid -> app id of the processes that own a top-level window (written by the window sensor).
        self.apps: dict[int, str] = {}
        # The newest desktop probe round trip, ms (0: none yet).
        self.probe_ms = 0.0
        # pid -> resident bytes at the last process sample (names the victim of an OOM kill).
        self.rss: dict[int, int] = {}
        self.link = LinkStats()
        self.logon = LogonClock(emit)


def since_boot_s() -> float:
    """Now on the boot clock, the clock of a process's start time in /proc."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def started_s(pid: int) -> float | None:
    """When ``pid`` started, on the boot clock (to 1/CLK_TCK; psutil's create_time adds the boot time,
    which /proc gives in whole seconds, so it can be up to 1 s off), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            line = file.read()
        return int(line[line.rfind(b")") + 2 :].split()[19]) / _TICKS_PER_S
    except (OSError, IndexError, ValueError):
        return None


_versions: dict[tuple[str, int, int], str] = {}


def app_version(pid: int) -> str:
    """A fingerprint of the process's executable file (path, size, mtime): the same build gives the
    same value on every desktop of an image; "" when it cannot be read."""
    try:
        path = os.readlink(f"/proc/{pid}/exe")
        stat = os.stat(f"/proc/{pid}/exe")
    except OSError:
        return ""
    key = (path, stat.st_size, int(stat.st_mtime))
    found = _versions.get(key)
    if found is None:
        found = _versions[key] = hashlib.sha256(repr(key).encode()).hexdigest()[:12]
    return found
