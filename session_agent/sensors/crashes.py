"""Process faults sensor: processes of the session that die by a signal, and OOM kills.

How a process that is not our child is seen to die by a signal, on Linux, without being its parent:

* the **proc connector** (netlink ``NETLINK_CONNECTOR``, ``CN_IDX_PROC``) tells every process's exit
  with its wait status (signal, core dumped) as it happens. Listening needs ``CAP_NET_ADMIN`` on most
  kernels; the agent of a desktop that runs it without that privilege has no crash sensing (the sensor
  says so once in its log and stops);
* the alternatives fall short: ``pidfd_open`` + poll says *that* a process ended but ``waitid`` on the
  pidfd gives the status to its parent only; ``PR_SET_CHILD_SUBREAPER`` covers only processes the
  agent started (an app launched by the session is not below it); ``/proc/<pid>/stat``'s exit code
  is readable only while the zombie waits for its parent (microseconds); core files depend on
  ``core_pattern`` (a pipe to systemd-coredump, or a relative name in the crashing app's directory, as
  here); the kernel log (segfault lines, the OOM killer's victim) is closed by ``dmesg_restrict``.

"The session's" processes: those of the agent's user whose environment names the agent's X display (read
when a program starts, or when the sensor starts for those already running; a child forked without a
program of its own is its parent's); with no display, every process of the agent's user. Only the
process name (comm) is read, never a command line. A crash is a death by a signal that means a fault
(``CRASH_SIGNALS``, or any that dumped core): SIGTERM, SIGINT or SIGHUP are the ordinary ends of an app,
and a SIGKILL that no OOM kill explains is someone ending it (a remediation, the user's ``kill -9``), so
neither is a crash. A program that dies within microseconds of its start, before its environment could
be read, is missed.

OOM kills: the kernel counts them in ``/proc/vmstat`` (``oom_kill``). When the counter goes up, the
victim is the session's process that died by SIGKILL within ``_OOM_MATCH_S`` of it (the OOM killer
sends SIGKILL); it is reported ``AppFault`` OOM_KILLED with its last sampled RSS, instead of CRASHED.
With no such process (a victim outside the session) it is reported with pid 0.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.errors import SensorError
from session_agent.sensors.base import Emit, new_event
from session_agent.sensors.health import DesktopHealth, app_version
from session_agent.sensors.metrics import read_vmstat
from session_agent.sensors.window import MAX_NAME_CHARS

logger = logging.getLogger(__name__)

# include/uapi/linux/connector.h, cn_proc.h
_NETLINK_CONNECTOR = 11
_CN_IDX_PROC = 1
_CN_VAL_PROC = 1
_PROC_CN_MCAST_LISTEN = 1
_NLMSG_DONE = 3
_PROC_EVENT_EXEC = 0x00000002
_PROC_EVENT_COMM = 0x00000200
_PROC_EVENT_NONZERO_EXIT = 0x20000000
_PROC_EVENT_EXIT = 0x80000000
# Since Linux 6.6 a listener may ask for some events only: new programs, new names and deaths with a
# non-zero status. Forks and clean exits (every thread's, machine-wide) would cost the most to read.
_FILTER_SINCE = (6, 6)
_WANTED = _PROC_EVENT_EXEC | _PROC_EVENT_COMM | _PROC_EVENT_NONZERO_EXIT
_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_CN_MSG = struct.Struct("=IIIIHH")  # cn_msg: idx, val, seq, ack, len, flags
_EVENT = struct.Struct("=IIQ")  # proc_event: what, cpu, timestamp_ns
_EXIT = struct.Struct("=IIIIII")  # pid, tgid, exit_code, exit_signal, parent pid, parent tgid
_EXEC = struct.Struct("=II")  # pid, tgid
_EVENT_AT = _HEADER.size + _CN_MSG.size
_DATA_AT = _EVENT_AT + _EVENT.size
# The OOM killer's SIGKILL and the counter's increment are the same instant; the counter is read once
# per poll, so a death this close to an increment is its victim.
_OOM_MATCH_S = 2.0
_POLL_S = 1.0
_RECEIVE_BUFFER = 1 << 20
CRASH_SIGNALS = frozenset(
    {
        signal.SIGSEGV,
        signal.SIGBUS,
        signal.SIGILL,
        signal.SIGFPE,
        signal.SIGABRT,
        signal.SIGTRAP,
        signal.SIGSYS,
        signal.SIGQUIT,
    }
)


@dataclass(frozen=True, slots=True)
class Tracked:
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class Death:
    pid: int
    process: Tracked
    signal: int
    core_dumped: bool
    at: float  # monotonic


def listen_socket() -> socket.socket:
    """A netlink socket subscribed to process events (OSError/PermissionError when not allowed)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_CONNECTOR)
    try:
        sock.bind((0, _CN_IDX_PROC))
        op = struct.pack("=I", _PROC_CN_MCAST_LISTEN)
        if _kernel() >= _FILTER_SINCE:
            op += struct.pack("=I", _WANTED)  # struct proc_input {mcast_op, event_type}
        message = _CN_MSG.pack(_CN_IDX_PROC, _CN_VAL_PROC, 0, 0, len(op), 0) + op
        sock.send(_HEADER.pack(_HEADER.size + len(message), _NLMSG_DONE, 0, 0, 0) + message)
    except OSError:
        sock.close()
        raise
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)  # room for a burst
    sock.settimeout(_POLL_S)
    return sock


def _kernel() -> tuple[int, int]:
    """This kernel's (major, minor) version."""
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def parse_event(data: bytes) -> tuple[int, int, int, int] | None:
    """(what, tgid, exit status, parent tgid) of one proc connector message about a whole process (not
    a thread), else None; the status and parent are 0 but for an exit."""
    if len(data) < _DATA_AT + _EXEC.size:
        return None
    what = _EVENT.unpack_from(data, _EVENT_AT)[0]
    if what == _PROC_EVENT_EXIT and len(data) >= _DATA_AT + _EXIT.size:
        pid, tgid, status, _, _, parent = _EXIT.unpack_from(data, _DATA_AT)
        return (what, tgid, status, parent) if pid == tgid else None
    if what in (_PROC_EVENT_EXEC, _PROC_EVENT_COMM):
        pid, tgid = _EXEC.unpack_from(data, _DATA_AT)
        return (what, tgid, 0, 0) if pid == tgid else None
    return None


class ProcessFaultSensor:
    name = "process_faults"

    def __init__(self, display: str, emit: Emit, *, health: DesktopHealth) -> None:
        self._display = display.encode()
        self._emit = emit
        self._health = health
        self._uid = os.getuid()
        self._processes: dict[int, Tracked] = {}  # the session's live processes
        self._deaths: deque[Death] = deque()  # recent SIGKILL deaths, for OOM attribution
        self._oom_pending: deque[float] = deque()  # counter increments not yet matched
        self._oom_kills = 0
        self.listening = False
        self.overruns = 0

    def run(self, stop: threading.Event) -> None:
        try:
            sock = listen_socket()
        except OSError as exc:
            logger.warning(
                "crash sensing off: the proc connector is not available to this agent (%s); "
                "it needs CAP_NET_ADMIN on most kernels (see docs/diagnostics.md)",
                exc,
            )
            return
        try:
            self._oom_kills = read_vmstat()["oom_kill"]
            self._scan()
            self.listening = True
            next_poll = time.monotonic() + _POLL_S
            while not stop.is_set():
                try:
                    data = sock.recv(4096)
                except TimeoutError:
                    data = b""
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise SensorError(f"proc connector failed: {exc}") from exc
                    # The kernel dropped events we read too slowly (a burst of programs): go on.
                    self.overruns += 1
                    logger.debug("proc connector overrun %d: some process events were lost", self.overruns)
                    data = b""
                if data:
                    self._on_message(data)
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + _POLL_S
                    self._poll_oom()
        finally:
            self.listening = False
            sock.close()

    def _scan(self) -> None:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                self._track(int(entry))

    def _track(self, pid: int) -> None:
        """Remember ``pid``'s name when it is a process of this session."""
        try:
            if os.stat(f"/proc/{pid}").st_uid != self._uid:
                return
            if self._display:
                with open(f"/proc/{pid}/environ", "rb") as file:
                    environ = file.read().split(b"\0")
                if b"DISPLAY=" + self._display not in environ:
                    self._processes.pop(pid, None)
                    return
            with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as file:
                self._processes[pid] = Tracked(file.read().strip()[:MAX_NAME_CHARS], app_version(pid))
        except OSError:
            return  # gone already, or not ours to read

    def _on_message(self, data: bytes) -> None:
        parsed = parse_event(data)
        if parsed is None:
            return
        what, pid, status, parent = parsed
        if what != _PROC_EVENT_EXIT:
            self._track(pid)  # exec: a new program (and environment); comm: a new name
            return
        # A child forked without a program of its own (a browser's renderer) is its parent's.
        process = self._processes.pop(pid, None) or self._processes.get(parent)
        if process is None or not os.WIFSIGNALED(status):
            return
        death = Death(pid, process, os.WTERMSIG(status), os.WCOREDUMP(status), time.monotonic())
        if death.signal == signal.SIGKILL:
            # Killed: maybe by the OOM killer; decided once the counter has been read again.
            self._deaths.append(death)
        elif death.signal in CRASH_SIGNALS or death.core_dumped:
            self._report(pb.AppFault.KIND_CRASHED, death)

    def _poll_oom(self) -> None:
        now = time.monotonic()
        count = read_vmstat()["oom_kill"]
        self._oom_pending.extend([now] * max(0, count - self._oom_kills))
        self._oom_kills = count
        while self._oom_pending:
            victim = next((d for d in self._deaths if abs(d.at - self._oom_pending[0]) <= _OOM_MATCH_S), None)
            if victim is None and now - self._oom_pending[0] < _OOM_MATCH_S:
                break  # its death may not have been read yet
            self._oom_pending.popleft()
            if victim is None:
                unknown = Death(0, Tracked("", ""), signal.SIGKILL, False, now)
                self._report(pb.AppFault.KIND_OOM_KILLED, unknown)
            else:
                self._deaths.remove(victim)
                self._report(pb.AppFault.KIND_OOM_KILLED, victim)
        # A SIGKILL no OOM kill explains was someone ending the process: not a fault of the app.
        while self._deaths and now - self._deaths[0].at > _OOM_MATCH_S:
            self._deaths.popleft()

    def _report(self, kind: pb.AppFault.Kind.ValueType, death: Death) -> None:
        event = new_event()
        fault = event.app_fault
        fault.kind = kind
        fault.pid = death.pid
        fault.executable = death.process.name
        fault.app_id = self._health.apps.get(death.pid, "") or death.process.name.lower()
        fault.app_version = death.process.version
        fault.signal = death.signal
        fault.core_dumped = death.core_dumped
        fault.rss_bytes = self._health.rss.get(death.pid, 0)
        self._emit(event)
