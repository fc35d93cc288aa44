"""The ops remediation actions: end or restart one process, free temp space, a diagnostic snapshot,
log the session off.

Guards (each refusal is STATUS_REFUSED, nothing done):

* **Processes** are named by pid *and* executable, and must belong to the desktop's user (the user
  the agent runs as): a pid reused by another program, another user's process, pid 1 and the agent
  itself are refused. Ending is SIGTERM, then SIGKILL after ``KILL_GRACE_S``. A restart starts the
  same argv, working directory and environment again, in a session of its own, never through a shell.
* **Temp space**: only regular files (no links, sockets, directories) under ``temp_dir`` that belong
  to the desktop's user and were neither modified nor read for ``older_than_s`` (at least
  ``MIN_TEMP_AGE_S``); never the X server's files (``.X*`` at the top: locks and sockets), nor the
  agent's spool. Walks at most ``MAX_TEMP_ENTRIES`` entries within the action's time.
* **Log off** runs the platform's ``logoff_command`` when one is set (e.g. logind's); else, on the X
  display, every app window is asked to close through the window manager (``_NET_CLOSE_WINDOW``: apps
  may save or ask), and the apps still running after the grace period are ended like a process above.
  The agent keeps running, and the display stays for the platform to recycle.
* **Diagnostics** read only: load, memory, disks, the top processes by CPU and by memory (names, never
  command lines, which can carry secrets) and the spool's depth.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent import config as names
from session_agent.config import AgentSettings
from session_agent.errors import ActionFailedError, ActionRefusedError
from session_agent.executor.protocol import ActionContext, Handler, Outcome
from session_agent.executor.x11 import X11Desktop
from session_agent.spool import Spool

logger = logging.getLogger(__name__)

KILL_GRACE_S = 5.0
LOGOFF_GRACE_S = 10.0
MIN_TEMP_AGE_S = 3600
MAX_TEMP_ENTRIES = 100_000
TOP_PROCESSES = 5
CPU_SAMPLE_S = 0.5
# pid, name, CPU percent over the sample, RSS bytes
_Sample = tuple[int, str, float, int]


class Remediation:
    """Handlers of the remediation actions of one agent."""

    def __init__(self, settings: AgentSettings, spool: Spool) -> None:
        self._settings = settings
        self._spool = spool
        self._started = time.monotonic()

    def handlers(self) -> dict[str, Handler]:
        return {
            names.ACTION_KILL_PROCESS: self.kill_process,
            names.ACTION_RESTART_PROCESS: self.restart_process,
            names.ACTION_FREE_TEMP_SPACE: self.free_temp_space,
            names.ACTION_DIAGNOSTIC_SNAPSHOT: self.diagnostic_snapshot,
            names.ACTION_LOG_OFF: self.log_off,
        }

    def kill_process(self, command: pb.Command, context: ActionContext) -> Outcome:
        step = command.remediation.kill_process
        process = _guarded_process(step.pid, step.expect_executable)
        observed = {"pid": str(step.pid), "executable": step.expect_executable}
        return Outcome({**observed, **_end(process, context)})

    def restart_process(self, command: pb.Command, context: ActionContext) -> Outcome:
        step = command.remediation.restart_process
        process = _guarded_process(step.pid, step.expect_executable)
        try:
            argv, cwd, env, exe = process.cmdline(), process.cwd(), process.environ(), process.exe()
        except psutil.Error as exc:
            raise ActionFailedError(f"cannot read how process {step.pid} was started: {exc}") from exc
        if not argv:
            raise ActionRefusedError(f"process {step.pid} has no command line to start again")
        ended = _end(process, context)
        context.check()
        try:
            restarted = subprocess.Popen(
                argv,
                executable=exe or None,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise ActionFailedError(
                f"could not start {step.expect_executable} again: {exc}", observed=ended
            ) from exc
        threading.Thread(target=restarted.wait, name=f"reap-{restarted.pid}", daemon=True).start()
        return Outcome({"pid": str(step.pid), "new_pid": str(restarted.pid), **ended})

    def free_temp_space(self, command: pb.Command, context: ActionContext) -> Outcome:
        older_than_s = command.remediation.free_temp_space.older_than_s
        if older_than_s < MIN_TEMP_AGE_S:
            raise ActionRefusedError(f"older_than_s must be at least {MIN_TEMP_AGE_S}")
        root = self._settings.temp_dir
        keep = {self._spool.path, *(Path(f"{self._spool.path}{suffix}") for suffix in ("-wal", "-shm"))}
        cutoff = time.time() - older_than_s
        uid = os.getuid()
        removed = freed = failed = seen = 0
        for directory, subdirs, files in os.walk(root):
            here = Path(directory)
            if here == root:  # the X server's locks and sockets live at the top: .X0-lock, .X11-unix
                subdirs[:] = [name for name in subdirs if not name.startswith(".X")]
                files = [name for name in files if not name.startswith(".X")]
            for name in files:
                seen += 1
                if seen > MAX_TEMP_ENTRIES:
                    break
                if seen % 256 == 0:
                    context.check()
                path = here / name
                try:
                    info = path.lstat()
                except OSError:
                    continue
                if (
                    not stat.S_ISREG(info.st_mode)
                    or info.st_uid != uid
                    or max(info.st_mtime, info.st_atime) > cutoff
                    or path in keep
                ):
                    continue
                try:
                    path.unlink()
                except OSError:
                    failed += 1
                    continue
                removed += 1
                freed += info.st_blocks * 512 or info.st_size
            if seen > MAX_TEMP_ENTRIES:
                break
        observed = {
            "temp_dir": str(root),
            "files_removed": str(removed),
            "bytes_freed": str(freed),
            "files_failed": str(failed),
            "files_seen": str(min(seen, MAX_TEMP_ENTRIES)),
        }
        logger.info("freed %d bytes in %d files of %s", freed, removed, root)
        return Outcome(observed)

    def log_off(self, command: pb.Command, context: ActionContext) -> Outcome:
        grace_s = float(command.remediation.log_off.grace_s) or LOGOFF_GRACE_S
        if self._settings.logoff_command:
            return Outcome(_run_logoff_command(shlex.split(self._settings.logoff_command), context))
        with X11Desktop(self._settings.display) as desktop:
            windows = desktop.windows()
            for window in windows:
                desktop.close_window(window.window_id)
        apps: dict[int, psutil.Process] = {}
        for window in windows:
            process = _own_process(window.pid)
            if process is not None:
                apps[window.pid] = process
        grace = max(0.0, min(grace_s, context.remaining() - 2))
        _, left = psutil.wait_procs(list(apps.values()), timeout=grace)
        ended = [_end(process, context)["signal"] for process in left]
        observed = {
            "windows_closed": str(len(windows)),
            "apps": str(len(apps)),
            "apps_closed_themselves": str(len(apps) - len(left)),
            "apps_ended": str(sum(signal != "none" for signal in ended)),
        }
        logger.info("logged off: %s", observed)
        return Outcome(observed)

    def diagnostic_snapshot(self, command: pb.Command, context: ActionContext) -> Outcome:
        processes = list(psutil.process_iter(["pid", "name", "memory_info"]))
        for process in processes:
            try:
                process.cpu_percent(None)  # the baseline of the sample below
            except psutil.Error:
                continue
        psutil.cpu_percent(None)
        context.sleep(CPU_SAMPLE_S)
        total_cpu = psutil.cpu_percent(None)
        sampled: list[_Sample] = []
        for process in processes:
            try:
                rss = process.info["memory_info"].rss if process.info["memory_info"] else 0
                sampled.append((process.pid, process.info["name"] or "", process.cpu_percent(None), rss))
            except psutil.Error:
                continue
        memory, swap = psutil.virtual_memory(), psutil.swap_memory()
        load = os.getloadavg()
        observed = {
            "cpu_percent": f"{total_cpu:.1f}",
            "cpu_count": str(psutil.cpu_count() or 0),
            "load": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
            "memory_total_bytes": str(memory.total),
            "memory_available_bytes": str(memory.available),
            "swap_used_bytes": str(swap.used),
            "process_count": str(len(sampled)),
            "uptime_s": str(round(time.time() - psutil.boot_time())),
            "top_cpu": _top(sampled, key=lambda row: row[2]),
            "top_rss": _top(sampled, key=lambda row: row[3]),
            "spool_depth": str(self._spool.depth),
            "spool_bytes": str(self._spool.bytes),
            "agent_uptime_s": str(round(time.monotonic() - self._started)),
        }
        for label, path in (("root", Path("/")), ("home", Path.home()), ("temp", self._settings.temp_dir)):
            try:
                usage = psutil.disk_usage(str(path))
            except OSError:
                continue
            observed[f"disk_{label}"] = f"{usage.used} of {usage.total} bytes used ({usage.percent:.1f}%)"
        return Outcome(observed)


def _guarded_process(pid: int, expect_executable: str) -> psutil.Process:
    """The process ``pid`` if it is the expected program of the desktop's user; else ActionRefusedError."""
    if not expect_executable:
        raise ActionRefusedError("expect_executable is required (it guards against a reused pid)")
    if pid <= 1 or pid == os.getpid():
        raise ActionRefusedError(f"pid {pid} is not a process the executor may end")
    try:
        process = psutil.Process(pid)
        uids = process.uids()
        executables = {
            process.name(),
            Path(process.exe() or "").name,
            Path((process.cmdline() or [""])[0]).name,
        }
    except psutil.NoSuchProcess as exc:
        raise ActionFailedError(f"no process {pid}") from exc
    except psutil.Error as exc:
        raise ActionRefusedError(f"process {pid} cannot be inspected: {exc}") from exc
    if uids.real != os.getuid() or uids.effective != os.getuid():
        raise ActionRefusedError(f"process {pid} does not belong to the desktop's user")
    if expect_executable not in executables:
        raise ActionRefusedError(f"process {pid} is not {expect_executable!r}")
    return process


def _own_process(pid: int) -> psutil.Process | None:
    """The desktop user's process ``pid``, when it may be ended (never pid 1 or the agent)."""
    if pid <= 1 or pid == os.getpid():
        return None
    try:
        process = psutil.Process(pid)
        uids = process.uids()
    except psutil.Error:
        return None
    return process if uids.real == uids.effective == os.getuid() else None


def _run_logoff_command(argv: list[str], context: ActionContext) -> dict[str, str]:
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=max(1.0, context.remaining() - 1),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ActionFailedError(f"the logoff command {argv[0]!r} failed: {exc}") from exc
    if done.returncode != 0:
        error = done.stderr.decode(errors="replace").strip()[:200]
        raise ActionFailedError(f"the logoff command {argv[0]!r} exited {done.returncode}: {error}")
    return {"logoff_command": argv[0], "exit": "0"}


def _end(process: psutil.Process, context: ActionContext) -> dict[str, str]:
    """SIGTERM, and SIGKILL when the process is still there after the grace period."""
    try:
        process.terminate()
        try:
            status = process.wait(min(KILL_GRACE_S, max(0.0, context.remaining() - 1)))
            signal_name = "SIGTERM"
        except psutil.TimeoutExpired:
            process.kill()
            status = process.wait(1.0)
            signal_name = "SIGKILL"
    except psutil.NoSuchProcess:
        return {"signal": "none", "exit": "already gone"}
    except psutil.TimeoutExpired as exc:
        raise ActionFailedError(f"process {process.pid} is still there after SIGKILL") from exc
    except psutil.Error as exc:
        raise ActionFailedError(f"cannot end process {process.pid}: {exc}") from exc
    return {"signal": signal_name, "exit": str(status)}


def _top(rows: list[_Sample], key: Callable[[_Sample], float]) -> str:
    ranked = sorted(rows, key=key, reverse=True)[:TOP_PROCESSES]
    return json.dumps(
        [
            {"pid": pid, "name": name, "cpu_percent": round(cpu, 1), "rss": rss}
            for pid, name, cpu, rss in ranked
        ]
    )
