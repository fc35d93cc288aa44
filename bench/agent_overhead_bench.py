"""Overhead of the real session agent on a real virtual desktop: CPU, memory and bytes sent.

Starts a VirtualDesktop (Xvfb + openbox) with two xterm windows and a Chromium window, a cloud
server on the embedded local store, and ``shadowdesk agent`` as a subprocess with all its sensors.
After a warm-up it measures two phases of ``--seconds`` each:

* ``idle``: nothing on the desktop changes;
* ``busy``: every 2 s xdotool activates the next window and, in an xterm, types a short command and
  Enter, so focus events fire and frames change.

CPU % is the agent's cpu_times (user + system, its child processes included) over wall time, of one
core. RSS and USS (pages private to the agent) are sampled every 0.2 s. Bytes/s is what the server
durably stored for the session in the phase (event segments + frame images, from the store's files):
the payload the agent sent, without gRPC/HTTP2/TCP framing.

Run: ``.venv/bin/python -m bench.agent_overhead_bench --seconds 60``. ``--agent-command`` runs the agent
from another install, e.g. an agent-only one (``pip install shadowdesk``, no cloud extra), while the
server runs from this one: ``--agent-command /tmp/agentvenv/bin/shadowdesk``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.process_stats import Usage, UsageMeter, peak_rss_mb
from bench.report import command_line, fmt, markdown_table
from cloud_infer.auth import issue_token
from harness.chromium import chromium_argv
from harness.processes import TOKEN_SECRET, ServerProcess, agent_env
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.naming import user_bucket
from shadowdesk_common.desktop import VirtualDesktop

logger = logging.getLogger(__name__)

USER_ID = "bench-agent-user"
SESSION_ID = "bench-agent-session"
_FIRST_DATA_DEADLINE_S = 90.0
_SWITCH_PERIOD_S = 2.0
_CHROMIUM_TITLE = "Shadowdesk bench page"


@dataclass(frozen=True, slots=True)
class StoredDelta:
    """What the server stored for the session during a phase."""

    bytes: int
    segments: int
    events: dict[str, int]

    def events_total(self) -> int:
        return sum(self.events.values())


@dataclass(frozen=True, slots=True)
class PhaseResult:
    phase: str
    seconds: float
    agent: Usage
    stored: StoredDelta


def _stored_files(session_root: Path) -> dict[Path, int]:
    files: dict[Path, int] = {}
    for kind in ("events", "frames"):
        folder = session_root / kind / SESSION_ID
        if folder.is_dir():
            files.update({p: p.stat().st_size for p in folder.iterdir() if not p.name.startswith(".")})
    return files


def _delta(before: dict[Path, int], after: dict[Path, int]) -> StoredDelta:
    new = {path: size for path, size in after.items() if path not in before}
    events: dict[str, int] = {}
    segments = 0
    for path in new:
        if path.parent.parent.name == "events":
            segments += 1
            for event in pb.EventBatch.FromString(path.read_bytes()).events:
                kind = event.WhichOneof("kind") or "unknown"
                events[kind] = events.get(kind, 0) + 1
    return StoredDelta(bytes=sum(new.values()), segments=segments, events=events)


def _wait_for_first_segment(session_root: Path, agent: psutil.Popen, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if agent.poll() is not None:
            raise RuntimeError(f"the agent exited with code {agent.returncode} before sending anything")
        if any(p.parent.parent.name == "events" for p in _stored_files(session_root)):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the agent stored nothing within {deadline_s} s")


def _run_phase(
    name: str,
    seconds: float,
    agent: psutil.Popen,
    session_root: Path,
    desktop: VirtualDesktop,
    windows: list[int],
    terminals: set[int],
) -> PhaseResult:
    meter = UsageMeter([agent.pid, *(child.pid for child in agent.children(recursive=True))])
    before = _stored_files(session_root)
    meter.start()
    start = time.monotonic()
    end = start + seconds
    if name == "busy":
        step = 0
        while (now := time.monotonic()) < end:
            window = windows[step % len(windows)]
            desktop.activate(window)
            if window in terminals:
                desktop.xdotool("type", "--delay", "30", f"echo shadowdesk bench step {step}")
                desktop.xdotool("key", "Return")
            step += 1
            time.sleep(max(0.0, min(end, now + _SWITCH_PERIOD_S) - time.monotonic()))
    else:
        time.sleep(seconds)
    usage = meter.stop()
    elapsed = time.monotonic() - start
    if agent.poll() is not None:
        raise RuntimeError(f"the agent exited with code {agent.returncode} during the {name} phase")
    return PhaseResult(name, elapsed, usage, _delta(before, _stored_files(session_root)))


def _launch_apps(desktop: VirtualDesktop, work: Path, with_chromium: bool) -> tuple[list[int], set[int]]:
    terminals = []
    for title in ("Shadowdesk bench terminal A", "Shadowdesk bench terminal B"):
        # `cat` echoes typed lines and, unlike a shell prompt, never retitles the window.
        desktop.launch(["xterm", "-T", title, "-geometry", "100x30", "-e", "cat"])
        terminals.append(desktop.wait_for_window(title))
    windows = list(terminals)
    if with_chromium:
        page = f"data:text/html,<title>{_CHROMIUM_TITLE}</title><h1>Shadowdesk bench</h1>"
        desktop.launch(chromium_argv(page, work / "chromium", "--window-size=1000,700"))
        windows.append(desktop.wait_for_window(f"{_CHROMIUM_TITLE} - Chromium", timeout_s=60))
    return windows, set(terminals)


def render(results: Sequence[PhaseResult]) -> str:
    header = [
        "desktop",
        "seconds",
        "agent CPU %",
        "RSS mean MiB",
        "RSS max MiB",
        "USS mean MiB",
        "stored bytes/s",
        "events/s",
        "frames",
        "focus events",
        "segments",
    ]
    rows = [
        [
            r.phase,
            fmt(r.seconds, 1),
            fmt(r.agent.cpu_percent, 2),
            fmt(r.agent.rss_mean_mb, 1),
            fmt(r.agent.rss_max_mb, 1),
            fmt(r.agent.uss_mean_mb, 1),
            fmt(r.stored.bytes / r.seconds),
            fmt(r.stored.events_total() / r.seconds, 2),
            str(r.stored.events.get("frame", 0)),
            str(r.stored.events.get("window_focus", 0)),
            str(r.stored.segments),
        ]
        for r in results
    ]
    return markdown_table(header, rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.agent_overhead_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds of each phase")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds after the first stored batch")
    parser.add_argument("--no-chromium", action="store_true", help="only the two xterm windows")
    parser.add_argument("--work-dir", type=Path, default=None, help="store, spool and logs (default: temp)")
    parser.add_argument(
        "--agent-command",
        default=None,
        help="the `shadowdesk` executable that runs the agent, e.g. an agent-only install's "
        "venv/bin/shadowdesk (default: this interpreter's -m shadowdesk.cli)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    agent_argv = [args.agent_command] if args.agent_command else [sys.executable, "-m", "shadowdesk.cli"]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="shadowdesk-agent-bench-") as tmp:
        work: Path = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        store_root = work / "store"
        session_root = store_root / user_bucket(USER_ID)
        server_env = {
            "SHADOWDESK_STORE_BACKEND": "local",
            "SHADOWDESK_STORE_LOCAL_ROOT": str(store_root),
            "SHADOWDESK_OTEL_EXPORTER": "none",
            "SHADOWDESK_OTEL_LOG_LEVEL": "WARNING",
        }
        with VirtualDesktop() as desktop, ServerProcess(server_env, work / "server.log") as server:
            windows, terminals = _launch_apps(desktop, work, not args.no_chromium)
            token = issue_token(
                TOKEN_SECRET, user_id=USER_ID, scope="ingest", session_id=SESSION_ID, ttl_s=3600
            )
            env = {
                **os.environ,
                **agent_env(server, token, USER_ID, SESSION_ID, work / "agent-spool.sqlite3"),
                "DISPLAY": desktop.display,
                "SHADOWDESK_AGENT_DISPLAY": desktop.display,
                "SHADOWDESK_OTEL_EXPORTER": "none",
                "SHADOWDESK_OTEL_LOG_LEVEL": "WARNING",
            }
            with (work / "agent.log").open("ab") as agent_log:
                agent = psutil.Popen(
                    [*agent_argv, "agent"],
                    env=env,
                    stdout=agent_log,
                    stderr=agent_log,
                )
            try:
                _wait_for_first_segment(session_root, agent, _FIRST_DATA_DEADLINE_S)
                logger.info("agent is streaming; warming up for %.0f s", args.warmup)
                desktop.activate(windows[0])
                time.sleep(args.warmup)
                results = [
                    _run_phase(name, args.seconds, agent, session_root, desktop, windows, terminals)
                    for name in ("idle", "busy")
                ]
                peak_mb = peak_rss_mb(agent.pid)
            finally:
                agent.terminate()
                try:
                    agent.wait(timeout=15)
                except psutil.TimeoutExpired:
                    agent.kill()
    apps = "2 xterm" + (" + 1 Chromium" if not args.no_chromium else "")
    sys.stdout.write(
        f"\n{command_line('bench.agent_overhead_bench', argv)}\n\n"
        f"machine: {os.cpu_count()} cpus; Xvfb 1280x800 + openbox, {apps} windows; local store; "
        f"agent: {' '.join([*agent_argv, 'agent'])}; "
        f"agent peak RSS since start (VmHWM): {peak_mb:.1f} MiB\n\n"
        f"{render(results)}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
