"""The ops sensors on a real Xvfb desktop: hangs of a real X client, crashes and OOM kills of real
processes, the top consumers and the desktop probe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.sensors.base import Sensor
from session_agent.sensors.crashes import ProcessFaultSensor
from session_agent.sensors.desktop import DesktopSensor
from session_agent.sensors.health import DesktopHealth
from session_agent.sensors.metrics import MetricsSensor
from shadowdesk_common.desktop import VirtualDesktop
from tests.support.cgroups import memory_cgroup
from tests.support.collected import Collected
from tests.support.polling import wait_until

PING_APP = Path(__file__).parents[2] / "support" / "ping_app.py"
# Run by a child: no core file in the test's directory (core_pattern here is a relative "core").
NO_CORE = "import resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "


def faults(events: Collected, kind: pb.AppFault.Kind.ValueType) -> list[pb.AppFault]:
    return [e.app_fault for e in events.of("app_fault") if e.app_fault.kind == kind]


def test_an_app_that_stops_answering_its_ping_is_hung_within_six_seconds_and_recovers(
    desktop: VirtualDesktop, run_sensor: Callable[[Sensor], threading.Thread]
) -> None:
    app = desktop.launch([sys.executable, str(PING_APP), "ping-target"])
    desktop.wait_for_window("ping-target")
    events, health = Collected(), DesktopHealth()
    health.logon.emit = events
    sensor = DesktopSensor(
        desktop.display, events, health=health, hang_after_s=5.0, ping_interval_s=0.5, probe_interval_s=0.5
    )
    run_sensor(sensor)
    both = {pb.LogonPhase.PHASE_DESKTOP_UP, pb.LogonPhase.PHASE_FIRST_WINDOW}
    wait_until(lambda: {e.logon.phase for e in events.of("logon")} == both, what="logon phases")
    assert all(e.logon.since_logon_ms > 0 for e in events.of("logon"))
    # It answers while it runs: a few seconds and no hang.
    wait_until(lambda: health.probe_ms > 0, what="a desktop probe")
    time.sleep(3)
    assert faults(events, pb.AppFault.KIND_HUNG) == []
    assert 0 < health.probe_ms < 500

    os.kill(app.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        wait_until(lambda: bool(faults(events, pb.AppFault.KIND_HUNG)), timeout_s=8, what="the hang")
        assert time.monotonic() - stopped <= 6.5
        (hung,) = faults(events, pb.AppFault.KIND_HUNG)
        assert (hung.app_id, hung.pid, hung.hung_ms >= 5000) == ("pingapp", app.pid, True)
        assert hung.executable.startswith("python") and hung.app_version
    finally:
        os.kill(app.pid, signal.SIGCONT)
    wait_until(lambda: bool(faults(events, pb.AppFault.KIND_RECOVERED)), timeout_s=4, what="the recovery")
    (recovered,) = faults(events, pb.AppFault.KIND_RECOVERED)
    assert recovered.pid == app.pid and recovered.hung_ms >= 5000
    desktop.kill(app)


@pytest.fixture
def crash_sensor(
    desktop: VirtualDesktop, run_sensor: Callable[[Sensor], threading.Thread]
) -> Iterator[tuple[Collected, DesktopHealth]]:
    events, health = Collected(), DesktopHealth()
    sensor = ProcessFaultSensor(desktop.display, events, health=health)
    run_sensor(sensor)
    wait_until(lambda: sensor.listening, what="the proc connector")
    yield events, health


def test_a_process_of_the_session_that_dies_by_sigsegv_is_reported_crashed_with_its_signal(
    desktop: VirtualDesktop, crash_sensor: tuple[Collected, DesktopHealth]
) -> None:
    events, _ = crash_sensor
    code = NO_CORE + "import os, signal, time; time.sleep(0.3); os.kill(os.getpid(), signal.{})"
    session = {**os.environ, **desktop.env}
    elsewhere = {**session, "DISPLAY": ":4242"}
    crashed = subprocess.Popen([sys.executable, "-c", code.format("SIGSEGV")], env=session)
    other = subprocess.Popen([sys.executable, "-c", code.format("SIGABRT")], env=elsewhere)
    ended = subprocess.Popen([sys.executable, "-c", code.format("SIGTERM")], env=session)
    for process in (crashed, other, ended):
        process.wait(10)
    wait_until(lambda: bool(faults(events, pb.AppFault.KIND_CRASHED)), what="the crash")
    time.sleep(1)  # anything else would have come by now
    (fault,) = faults(events, pb.AppFault.KIND_CRASHED)  # not the other display's, not the SIGTERM
    assert (fault.pid, fault.signal) == (crashed.pid, signal.SIGSEGV)
    assert fault.executable.startswith("python") and fault.app_id == fault.executable.lower()
    assert fault.app_version and not fault.core_dumped  # RLIMIT_CORE 0


def test_an_oom_kill_of_a_session_process_names_the_victim(
    desktop: VirtualDesktop, crash_sensor: tuple[Collected, DesktopHealth], tmp_path: Path
) -> None:
    parent = memory_cgroup()
    if parent is None:
        pytest.skip("needs a writable memory cgroup to cause an OOM kill without harming the machine")
    cgroup = parent / f"shadowdesk-oom-{os.getpid()}"
    cgroup.mkdir()
    try:
        (cgroup / "memory.limit_in_bytes").write_text(str(64 * 2**20))
        events, _ = crash_sensor
        # Joins the 64 MiB cgroup, then allocates far more: the kernel's OOM killer ends it.
        code = "import sys, time; time.sleep(0.5); b = bytearray(400 * 2**20); print(len(b))"
        hog = subprocess.Popen(
            ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec {sys.executable} -c "{code}"'],
            env={**os.environ, **desktop.env},
        )
        assert hog.wait(20) == -signal.SIGKILL
        wait_until(lambda: bool(faults(events, pb.AppFault.KIND_OOM_KILLED)), what="the OOM kill")
        (oom,) = faults(events, pb.AppFault.KIND_OOM_KILLED)
        assert (oom.pid, oom.signal) == (hog.pid, signal.SIGKILL)
        assert oom.executable.startswith("python")
        assert faults(events, pb.AppFault.KIND_CRASHED) == []
    finally:
        cgroup.rmdir()


def test_top_consumers_name_a_cpu_hog_and_the_desktop_probe_is_positive(
    desktop: VirtualDesktop, run_sensor: Callable[[Sensor], threading.Thread]
) -> None:
    # PR_SET_NAME (15): its comm, the name the sensor reports.
    code = "import ctypes; ctypes.CDLL(None).prctl(15, b'cpuhog')\nwhile True: pass"
    hog = subprocess.Popen([sys.executable, "-c", code])
    try:
        health = DesktopHealth()
        health.apps = {hog.pid: "hogapp"}
        run_sensor(
            DesktopSensor(
                desktop.display,
                Collected(),
                health=health,
                hang_after_s=5,
                ping_interval_s=1,
                probe_interval_s=0.2,
            )
        )
        sensor = MetricsSensor(
            lambda _: None, interval_s=1.0, spool_depth=lambda: 7, health=health, top_processes=5
        )
        sensor.sample()
        time.sleep(1.5)
        metrics = sensor.sample().metrics
        # Among the top five (this machine's two cores are shared with other busy processes).
        (top,) = [usage for usage in metrics.top_cpu if usage.pid == hog.pid]
        assert (top.name, top.app_id) == ("cpuhog", "hogapp") and top.cpu_percent > 30
        assert [usage.cpu_percent for usage in metrics.top_cpu] == sorted(
            (usage.cpu_percent for usage in metrics.top_cpu), reverse=True
        )
        assert len(metrics.top_memory) == 5 and metrics.top_memory[0].rss_bytes > 0
        assert metrics.spool_depth == 7 and metrics.memory_total_bytes > 0 and metrics.disk_free_bytes > 0
        wait_until(lambda: health.probe_ms > 0, what="a probe")
        assert 0 < sensor.sample().metrics.desktop_probe_ms < 1000
    finally:
        hog.kill()
        hog.wait()
