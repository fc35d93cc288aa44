"""Remediation actions on real processes and a real temp directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from harness.dbus import SessionBus
from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.config import AgentSettings
from session_agent.errors import ActionFailedError, ActionRefusedError
from session_agent.executor import ActionContext
from session_agent.executor.remediation import MIN_TEMP_AGE_S, Remediation
from session_agent.spool import Spool
from shadowdesk_common.desktop import VirtualDesktop
from tests.support.polling import wait_until


def context() -> ActionContext:
    return ActionContext("c", time.monotonic() + 30)


def remediation(**action: object) -> pb.Command:
    return pb.Command(command_id="c", remediation=pb.Remediation(**action))  # type: ignore[arg-type]


@pytest.fixture
def remedy(
    make_settings: Callable[..., AgentSettings], open_spool: Callable[[], Spool], tmp_path: Path
) -> Remediation:
    (tmp_path / "temp").mkdir()
    return Remediation(make_settings(temp_dir=tmp_path / "temp"), open_spool())


@pytest.fixture
def sleeper() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        started.append(subprocess.Popen(["sleep", "300"], start_new_session=True))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(5)


def test_a_process_is_ended_only_by_pid_and_its_expected_executable(
    remedy: Remediation, sleeper: Callable[[], subprocess.Popen[bytes]]
) -> None:
    process = sleeper()
    with pytest.raises(ActionRefusedError, match="is not 'bash'"):
        remedy.kill_process(
            remediation(kill_process=pb.KillProcess(pid=process.pid, expect_executable="bash")), context()
        )
    with pytest.raises(ActionRefusedError, match="expect_executable is required"):
        remedy.kill_process(remediation(kill_process=pb.KillProcess(pid=process.pid)), context())
    for pid in (1, os.getpid()):
        with pytest.raises(ActionRefusedError, match="may end"):
            remedy.kill_process(
                remediation(kill_process=pb.KillProcess(pid=pid, expect_executable="x")), context()
            )
    assert process.poll() is None, "refusals did nothing"
    outcome = remedy.kill_process(
        remediation(kill_process=pb.KillProcess(pid=process.pid, expect_executable="sleep")), context()
    )
    assert (outcome.observed["signal"], outcome.observed["exit"]) == ("SIGTERM", "-15")
    process.wait(5)  # reaped by the action already (it is this test's child): returns at once
    with pytest.raises(ActionFailedError, match="no process"):
        remedy.kill_process(
            remediation(kill_process=pb.KillProcess(pid=process.pid, expect_executable="sleep")), context()
        )


def test_a_restart_starts_the_same_command_line_again(remedy: Remediation, tmp_path: Path) -> None:
    script = "import time, sys; time.sleep(300)"
    process = subprocess.Popen(
        [sys.executable, "-c", script, "marker-arg"], cwd=tmp_path, start_new_session=True
    )
    try:
        wait_until(lambda: "marker-arg" in psutil.Process(process.pid).cmdline(), what="the process to start")
        name = psutil.Process(process.pid).name()
        outcome = remedy.restart_process(
            remediation(restart_process=pb.RestartProcess(pid=process.pid, expect_executable=name)), context()
        )
        assert outcome.observed["exit"] == "-15" and not psutil.pid_exists(process.pid)
        restarted = psutil.Process(int(outcome.observed["new_pid"]))
        assert restarted.cmdline()[-3:] == ["-c", script, "marker-arg"]
        assert restarted.cwd() == str(tmp_path)
        restarted.kill()
        restarted.wait(5)
    finally:
        if process.poll() is None:
            process.kill()


def test_free_temp_space_removes_only_old_regular_files_of_the_user(
    remedy: Remediation, tmp_path: Path
) -> None:
    temp = tmp_path / "temp"
    old = time.time() - 2 * MIN_TEMP_AGE_S
    (temp / "cache").mkdir()
    files = {
        "old.log": (b"x" * 10_000, old),
        "cache/old.bin": (b"y" * 5_000, old),
        "fresh.log": (b"z" * 100, time.time()),
        ".X99-lock": (b"99", old),
    }
    for name, (data, stamp) in files.items():
        (temp / name).write_bytes(data)
        os.utime(temp / name, (stamp, stamp))
    (temp / "link").symlink_to(temp / "fresh.log")
    os.utime(temp / "link", (old, old), follow_symlinks=False)
    with pytest.raises(ActionRefusedError, match="at least"):
        remedy.free_temp_space(remediation(free_temp_space=pb.FreeTempSpace(older_than_s=60)), context())
    outcome = remedy.free_temp_space(
        remediation(free_temp_space=pb.FreeTempSpace(older_than_s=MIN_TEMP_AGE_S)), context()
    )
    assert outcome.observed["files_removed"] == "2"
    assert int(outcome.observed["bytes_freed"]) >= 15_000
    assert sorted(p.name for p in temp.rglob("*")) == [".X99-lock", "cache", "fresh.log", "link"]


def test_diagnostic_snapshot_reports_load_memory_disks_and_top_processes(remedy: Remediation) -> None:
    started = time.monotonic()
    outcome = remedy.diagnostic_snapshot(remediation(diagnostic_snapshot=pb.DiagnosticSnapshot()), context())
    observed = outcome.observed
    assert time.monotonic() - started < 5
    for key in ("cpu_percent", "load", "memory_total_bytes", "disk_root", "disk_temp", "spool_depth"):
        assert observed[key], key
    top_rss = json.loads(observed["top_rss"])
    assert len(top_rss) == 5 and top_rss[0]["rss"] >= top_rss[-1]["rss"]
    assert set(top_rss[0]) == {"pid", "name", "cpu_percent", "rss"}, "names only, never command lines"


def test_log_off_closes_every_app_window_and_ends_the_apps_that_stay(
    make_settings: Callable[..., AgentSettings],
    open_spool: Callable[[], Spool],
    desktop: VirtualDesktop,
    tmp_path: Path,
) -> None:
    with SessionBus(desktop.env) as bus:
        terminal, _ = desktop.launch_xterm("logoff-terminal")
        notes = tmp_path / "notes.txt"
        notes.write_text("draft\n")
        env = {**bus.app_env, "XDG_CONFIG_HOME": str(tmp_path / "config")}
        editor = desktop.launch(["mousepad", str(notes)], env=env)
        window = desktop.wait_for_window(f"{notes} - Mousepad")
        desktop.xdotool("windowactivate", "--sync", str(window))
        desktop.xdotool("type", "--delay", "20", "unsaved line")
        # Unsaved changes: mousepad answers the close with a "save?" dialog and stays.
        desktop.wait_for_window(f"*{notes} - Mousepad")
        remedy = Remediation(make_settings(display=desktop.display), open_spool())

        # 15 s: on a loaded machine the window manager and xterm take seconds to close it (8 s was not
        # always enough in a full serial run); mousepad, asking "save?", is ended after it.
        outcome = remedy.log_off(remediation(log_off=pb.LogOff(grace_s=15)), context())

        assert outcome.observed["windows_closed"] == "2", outcome.observed
        assert outcome.observed["apps_closed_themselves"] == "1", outcome.observed  # the xterm
        assert outcome.observed["apps_ended"] == "1", outcome.observed  # mousepad, after 15 s
        assert terminal.wait(5) is not None and editor.wait(5) is not None
        assert notes.read_text() == "draft\n"  # nothing was saved for the user behind their back


def test_log_off_runs_the_platform_command_when_one_is_set(
    make_settings: Callable[..., AgentSettings], open_spool: Callable[[], Spool], tmp_path: Path
) -> None:
    marker = tmp_path / "logged-off"
    script = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    remedy = Remediation(make_settings(logoff_command=f"{sys.executable} -c {script!r}"), open_spool())
    outcome = remedy.log_off(remediation(log_off=pb.LogOff()), context())
    assert outcome.observed["exit"] == "0" and marker.exists()

    failing = Remediation(make_settings(logoff_command="false"), open_spool())
    with pytest.raises(ActionFailedError, match="exited 1"):
        failing.log_off(remediation(log_off=pb.LogOff()), context())
