"""Sensors on a real Xvfb desktop with openbox and real xterms."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import psutil
import pytest
from PIL import Image, ImageDraw

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.errors import SensorError
from session_agent.sensors.base import FocusState, Sensor
from session_agent.sensors.frames import FrameSensor, dhash, hamming
from session_agent.sensors.metrics import MetricsSensor
from session_agent.sensors.window import WindowSensor
from shadowdesk_common.desktop import VirtualDesktop
from tests.support.collected import Collected
from tests.support.polling import wait_until


def focus_titles(events: Collected) -> list[str]:
    return [e.window_focus.title for e in events.of("window_focus")]


def test_focus_switches_and_title_changes_emit_window_focus(
    desktop: VirtualDesktop, run_sensor: Callable[[Sensor], threading.Thread]
) -> None:
    alpha, alpha_window = desktop.launch_xterm("alpha-notes")
    beta, beta_window = desktop.launch_xterm("beta-build")
    events, focus = Collected(), FocusState()
    run_sensor(
        WindowSensor(desktop.display, events, poll_s=0.2, focus=focus, emit_focus=True, emit_apps=False)
    )

    desktop.activate(alpha_window)
    wait_until(lambda: focus_titles(events)[-1:] == ["alpha-notes"], what="focus on alpha")
    desktop.activate(beta_window)
    wait_until(lambda: focus_titles(events)[-1:] == ["beta-build"], what="focus on beta")
    desktop.activate(alpha_window)
    wait_until(lambda: focus_titles(events)[-2:] == ["beta-build", "alpha-notes"], what="focus back on alpha")
    desktop.set_title(alpha_window, "alpha-renamed")
    wait_until(lambda: focus_titles(events)[-1:] == ["alpha-renamed"], what="title change")

    by_title = {e.window_focus.title: e.window_focus for e in events.of("window_focus")}
    assert by_title["alpha-notes"].window_id == alpha_window == by_title["alpha-renamed"].window_id
    assert by_title["alpha-notes"].pid == alpha.pid
    assert by_title["beta-build"].window_id == beta_window
    assert by_title["beta-build"].pid == beta.pid
    for info in by_title.values():
        assert (info.app_id, info.wm_class) == ("xterm", "xterm.XTerm")
    assert focus.window_id == alpha_window
    assert not events.of("app"), "apps were not asked for"
    assert all(e.time_unix_nano > 0 for e in events.of("window_focus"))


def test_app_lifecycle_follows_client_windows(
    desktop: VirtualDesktop, run_sensor: Callable[[Sensor], threading.Thread]
) -> None:
    first, _ = desktop.launch_xterm("already-running")
    events = Collected()
    run_sensor(
        WindowSensor(
            desktop.display, events, poll_s=0.2, focus=FocusState(), emit_focus=False, emit_apps=True
        )
    )

    def lifecycle(pid: int) -> list[int]:
        return [e.app.kind for e in events.of("app") if e.app.pid == pid]

    wait_until(lambda: lifecycle(first.pid) == [pb.AppLifecycle.KIND_STARTED], what="app present at start")
    second, _ = desktop.launch_xterm("started-later")
    wait_until(lambda: lifecycle(second.pid) == [pb.AppLifecycle.KIND_STARTED], what="app start")
    desktop.kill(second)
    wait_until(
        lambda: lifecycle(second.pid) == [pb.AppLifecycle.KIND_STARTED, pb.AppLifecycle.KIND_EXITED],
        what="app exit",
    )
    exited = [e.app for e in events.of("app") if e.app.kind == pb.AppLifecycle.KIND_EXITED]
    assert [(a.app_id, a.executable) for a in exited] == [("xterm", "xterm")]
    assert lifecycle(first.pid) == [pb.AppLifecycle.KIND_STARTED]
    # An app started while the sensor ran has its start time (process start to first listed window);
    # one already running has none. Both carry the build of their executable.
    started = {e.app.pid: e.app for e in events.of("app") if e.app.kind == pb.AppLifecycle.KIND_STARTED}
    assert 0 < started[second.pid].startup_ms < 30_000 and started[first.pid].startup_ms == 0
    assert started[second.pid].app_version == started[first.pid].app_version != ""
    assert not events.of("window_focus"), "focus was not asked for"


def test_window_sensor_reports_an_unreachable_display() -> None:
    sensor = WindowSensor(
        ":987", Collected(), poll_s=0.1, focus=FocusState(), emit_focus=True, emit_apps=True
    )
    with pytest.raises(SensorError, match="cannot open X display ':987'"):
        sensor.run(threading.Event())


def test_dhash_is_stable_for_identical_images_and_far_for_different_ones() -> None:
    plain = Image.new("RGB", (320, 200), (40, 40, 40))
    drawn = plain.copy()
    ImageDraw.Draw(drawn).rectangle((0, 0, 160, 100), fill=(250, 250, 250))
    assert dhash(plain) == dhash(plain.copy())
    assert 0 <= dhash(drawn) < 1 << 64
    assert hamming(dhash(plain), dhash(drawn)) >= 4
    assert hamming(0b1011, 0b0001) == 2


def frame_sensor(display: str, events: Collected, focus: FocusState) -> FrameSensor:
    return FrameSensor(
        display,
        events,
        interval_s=0.05,
        max_width=640,
        quality=60,
        min_distance=4,
        max_bytes=2 * 1024 * 1024,
        focused_window=lambda: focus.window_id,
    )


def test_frames_are_sent_on_change_and_not_grabbed_while_static(
    desktop: VirtualDesktop, run_sensor: Callable[[Sensor], threading.Thread]
) -> None:
    events, focus = Collected(), FocusState()
    focus.window_id = 4242
    sensor = frame_sensor(desktop.display, events, focus)
    run_sensor(sensor)
    wait_until(lambda: sensor.sent == 1, what="first frame")
    ticks = sensor.ticks
    wait_until(lambda: sensor.ticks >= ticks + 10, what="ten more intervals")
    assert (sensor.grabs, sensor.sent) == (1, 1), "a static screen is neither grabbed nor sent again"

    _, window = desktop.launch_xterm("frame-change")
    desktop.activate(window)
    wait_until(lambda: sensor.sent >= 2, what="a frame after the screen changed")

    frames = [e.frame for e in events.of("frame")]
    assert len(frames) == sensor.sent
    for frame in frames:
        assert frame.mime_type == "image/webp"
        image = Image.open(io.BytesIO(frame.image))
        assert image.format == "WEBP"
        assert image.size == (frame.width, frame.height) == (640, 400)  # 1280x800 downscaled
        assert frame.window_id == 4242
    assert hamming(frames[0].dhash, frames[1].dhash) >= 4


def test_near_identical_frames_are_skipped() -> None:
    events, focus = Collected(), FocusState()
    sensor = frame_sensor(":0", events, focus)
    screen = Image.new("RGB", (1280, 800), (30, 60, 90))
    ImageDraw.Draw(screen).rectangle((100, 100, 600, 500), fill=(240, 240, 240))
    sensor.consider(screen)
    speck = screen.copy()
    speck.putpixel((900, 700), (255, 0, 0))
    sensor.consider(speck)
    assert sensor.sent == 1, "one changed pixel is not a visible change"
    moved = Image.new("RGB", (1280, 800), (30, 60, 90))
    ImageDraw.Draw(moved).rectangle((700, 300, 1200, 700), fill=(240, 240, 240))
    sensor.consider(moved)
    assert sensor.sent == 2
    sent = [e.frame for e in events.of("frame")]
    assert [f.dhash for f in sent] == [dhash(screen), dhash(moved)]
    decoded = Image.open(io.BytesIO(sent[1].image)).convert("RGB")
    assert decoded.size == (640, 400)
    assert decoded.getpixel((475, 250))[0] > 200 and decoded.getpixel((100, 100))[2] < 120


def test_the_first_frame_of_a_newly_focused_window_is_always_sent() -> None:
    events, focus = Collected(), FocusState()
    sensor = frame_sensor(":0", events, focus)
    page = Image.new("RGB", (1280, 800), "white")
    ImageDraw.Draw(page).text((40, 40), "one page", fill="black")
    focus.window_id = 1
    sensor.consider(page)
    other = Image.new("RGB", (1280, 800), "white")
    ImageDraw.Draw(other).text((40, 40), "another page", fill="black")
    assert hamming(dhash(page), dhash(other)) < 4, "two mostly white pages hash alike"
    sensor.consider(other)
    assert sensor.sent == 1, "same window, near-identical frame: skipped"
    focus.window_id = 2
    sensor.consider(other)
    assert sensor.sent == 2, "a newly focused window is sent even though it hashes alike"
    assert [e.frame.window_id for e in events.of("frame")] == [1, 2]


def test_metrics_sample_the_system_and_the_spool_depth(
    run_sensor: Callable[[Sensor], threading.Thread],
) -> None:
    events = Collected()
    sensor = MetricsSensor(events, interval_s=0.05, spool_depth=lambda: 17)
    run_sensor(sensor)
    wait_until(lambda: len(events.of("metrics")) >= 3, what="three samples")
    sample = events.of("metrics")[-1].metrics
    assert sample.memory_total_bytes == psutil.virtual_memory().total
    assert 0 < sample.memory_used_bytes <= sample.memory_total_bytes
    assert 0 <= sample.cpu_percent <= 100
    assert 0 < sample.disk_used_percent <= 100
    assert sample.process_count > 1
    assert sample.net_rx_bytes > 0
    assert sample.spool_depth == 17
