"""Accessibility-text sensor on a real Xvfb desktop with a real session bus, AT-SPI, mousepad and Chromium."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from jeepney import DBusErrorResponse
from Xlib.display import Display

from harness.chromium import chromium_argv
from harness.dbus import SessionBus
from session_agent.privacy import PrivacyRules
from session_agent.sensors.accessibility import (
    ACCESSIBLE,
    TEXT,
    AccessibilitySensor,
    AtspiClient,
    TreeReader,
    WalkLimits,
    is_protected,
)
from session_agent.sensors.window import describe_window
from shadowdesk_common.desktop import VirtualDesktop
from tests.support.collected import Collected
from tests.support.polling import wait_until

ENGLISH = "Quarterly revenue grew by seven percent"
CHINESE = "季度收入增长了百分之七"
PARAGRAPH = "The quick brown fox reads the accessibility tree"
PASSWORD = "hunter2"
TYPED = "typed-into-a-search-box"
NO_PRIVACY = PrivacyRules(exclude_apps=(), title_patterns=())


@pytest.fixture(scope="module")
def a11y_desktop() -> Iterator[tuple[VirtualDesktop, SessionBus]]:
    with VirtualDesktop(width=1280, height=800) as desktop, SessionBus(desktop.env) as bus:
        yield desktop, bus


@pytest.fixture(scope="module")
def mousepad(
    a11y_desktop: tuple[VirtualDesktop, SessionBus], tmp_path_factory: pytest.TempPathFactory
) -> int:
    desktop, bus = a11y_desktop
    home = tmp_path_factory.mktemp("mousepad")
    document = home / "notes.txt"
    document.write_text(f"{ENGLISH}\n{CHINESE}\n", encoding="utf-8")
    desktop.launch(["mousepad", str(document)], env={**bus.app_env, "XDG_CONFIG_HOME": str(home)})
    return desktop.wait_for_window(f"{document} - Mousepad")


def start(sensor: AccessibilitySensor, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=sensor.run, args=(stop,), daemon=True)
    thread.start()
    return thread


def sensor_for(
    bus: SessionBus, desktop: VirtualDesktop, events: Collected, privacy: PrivacyRules
) -> AccessibilitySensor:
    return AccessibilitySensor(
        desktop.display, events, interval_s=0.5, poll_s=0.1, privacy=privacy, session_bus=bus.address
    )


def texts(events: Collected) -> list[str]:
    return [event.text.text for event in events.of("text")]


class FakeTree:
    """An AT-SPI client over a fixed tree: node path → (role, text, children), every node showing."""

    def __init__(self, nodes: dict[str, tuple[int, str, list[str]]]) -> None:
        self.nodes = nodes

    def call(
        self, node: tuple[str, str], interface: str, method: str, timeout: float, *args: object
    ) -> object:
        role, text, children = self.nodes[node[1]]
        replies = {
            "GetRole": role,
            "GetState": (1 << 25, 0),  # SHOWING
            "GetInterfaces": [ACCESSIBLE, TEXT],
            "GetText": text,
            "GetChildren": [(":1.1", child) for child in children],
        }
        return replies[method]


def test_inline_elements_keep_their_place_in_the_line_and_text_leaves_are_not_repeated() -> None:
    e = "\ufffc"  # Chromium: each child object's place in its parent's text
    tree = FakeTree(
        {
            # <p>Claim number: <strong>EXP-000042</strong> filed <a>details</a></p>: the text leaves are
            # static children too (their text already the paragraph's), and so is <strong>.
            "/p": (73, f"Claim number: {e} filed {e}", ["/t1", "/empty", "/strong", "/t2", "/a"]),
            "/t1": (116, "Claim number: ", []),
            "/empty": (116, "", []),
            "/strong": (116, "EXP-000042", ["/t3"]),
            "/t3": (116, "EXP-000042", []),
            "/t2": (116, " filed ", []),
            "/a": (88, "details", []),
            # A child with no place in the text left still counts, after the text.
            "/div": (39, f"Intro {e}", ["/h", "/list"]),
            "/h": (83, "Heading", []),
            "/list": (39, "Rows", []),
        }
    )
    reader = TreeReader(tree, WalkLimits())  # type: ignore[arg-type]  # the fake answers what it asks
    assert reader.read((":1.1", "/p"))[0].text == "Claim number: EXP-000042 filed details"
    assert reader.read((":1.1", "/div"))[0].text == "Intro\nHeading\nRows"


def test_only_password_and_single_line_fields_are_protected() -> None:
    assert is_protected(40, False, {})  # PASSWORD_TEXT
    assert is_protected(61, False, {"text-input-type": "password"})
    assert is_protected(79, True, {})  # a single-line entry
    assert not is_protected(61, False, {"text-input-type": "text"})  # a multi-line editor


@pytest.mark.e2e
def test_editor_text_in_english_and_chinese_and_private_windows_skipped(
    a11y_desktop: tuple[VirtualDesktop, SessionBus], mousepad: int
) -> None:
    desktop, bus = a11y_desktop
    desktop.activate(mousepad)
    public, private = Collected(), Collected()
    stop = threading.Event()
    private_sensor = sensor_for(
        bus, desktop, private, PrivacyRules(exclude_apps=("mousepad",), title_patterns=())
    )
    threads = [
        start(sensor_for(bus, desktop, public, NO_PRIVACY), stop),
        start(private_sensor, stop),
    ]
    try:
        wait_until(lambda: any(ENGLISH in t and CHINESE in t for t in texts(public)), what="mousepad text")
        snapshot = public.of("text")[-1].text
        assert (snapshot.window_id, snapshot.app_id, snapshot.source) == (mousepad, "mousepad", "atspi")
        assert snapshot.text.index(ENGLISH) < snapshot.text.index(CHINESE)  # reading order
        # Unchanged text is not sent again while the window stays focused (walks every 0.5 s).
        count = len(public.of("text"))
        stop.wait(1.5)
        assert len(public.of("text")) == count
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    # The private-rule sensor ran alongside for as long, and never even walked the window.
    assert private.of("text") == [] and private_sensor.walks == 0


@pytest.mark.e2e
def test_web_page_text_without_password_and_url_visit(
    a11y_desktop: tuple[VirtualDesktop, SessionBus], tmp_path: Path
) -> None:
    desktop, bus = a11y_desktop
    page = tmp_path / "report.html"
    page.write_text(
        "<!doctype html><title>Recall report</title><h1>Report</h1>"
        f"<p>{PARAGRAPH} <a href='#more'>with a link</a> inside.</p>"
        "<p>Claim number: <strong>EXP-000042</strong> filed</p>"
        f"<label>Password <input type=password value={PASSWORD}></label>"
        f"<label>Search <input type=text value={TYPED}></label>",
        encoding="utf-8",
    )
    # Launched without ACCESSIBILITY_ENABLED or flags: the sensor itself turns accessibility on.
    desktop.launch(chromium_argv(page.as_uri(), tmp_path / "profile"), env=bus.app_env)
    window = desktop.wait_for_window("Recall report - Chromium")
    desktop.activate(window)
    events = Collected()
    stop = threading.Event()
    thread = start(sensor_for(bus, desktop, events, NO_PRIVACY), stop)
    try:
        wait_until(lambda: any(PARAGRAPH in t for t in texts(events)), timeout_s=30, what="page text")
        wait_until(lambda: bool(events.of("url")), what="url visit")
    finally:
        stop.set()
        thread.join(10)
    snapshot = next(event.text for event in events.of("text") if PARAGRAPH in event.text.text)
    assert snapshot.window_id == window and snapshot.app_id == "chromium"
    assert f"{PARAGRAPH} with a link inside." in snapshot.text  # the link stays in its sentence
    assert "Claim number: EXP-000042 filed" in snapshot.text  # so does an inline element's text
    assert "Password" in snapshot.text  # the label is read, the field is not
    for text in texts(events):
        assert PASSWORD not in text and "•" not in text, text  # the field's value, or its mask
        assert TYPED not in text and str(page) not in text, text  # single-line fields: search, address bar
    visit = events.of("url")[0].url
    assert (visit.app_id, visit.url, visit.title) == ("chromium", page.as_uri(), "Recall report")


@pytest.mark.e2e
def test_walk_is_bounded(a11y_desktop: tuple[VirtualDesktop, SessionBus], mousepad: int) -> None:
    desktop, bus = a11y_desktop
    client = AtspiClient.connect(bus.address)
    display = Display(desktop.display)
    try:
        window = describe_window(display, display.create_resource_object("window", mousepad))
        assert window is not None
        frame = TreeReader(client, WalkLimits()).find_window(window)
        assert frame is not None
        full, cut = TreeReader(client, WalkLimits()).read(frame)
        assert not cut and CHINESE in full.text
        short, cut = TreeReader(client, WalkLimits(max_chars=20)).read(frame)
        assert cut and len(short.text) <= 20
        few, cut = TreeReader(client, WalkLimits(max_nodes=3)).read(frame)
        assert cut and ENGLISH not in few.text
        late, cut = TreeReader(client, WalkLimits(deadline_s=0)).read(frame)
        assert cut and late.text == ""
    finally:
        display.close()
        client.close()


def test_a_call_into_an_app_that_exited_raises_instead_of_returning_the_error_text(
    a11y_desktop: tuple[VirtualDesktop, SessionBus], mousepad: int
) -> None:
    _, bus = a11y_desktop
    client = AtspiClient.connect(bus.address)
    try:
        apps = client.applications()
        assert apps and all(client.name(app, 2.0) is not None for app in apps)
        # Unique bus names are never reused, so one past the last is an app that has gone: the bus
        # answers with an error message, which must raise rather than come back as a name.
        gone = (f":1.{max(int(name.split('.')[1]) for name, _ in apps) + 1000}", apps[0][1])
        with pytest.raises(DBusErrorResponse):
            client.name(gone, 2.0)
    finally:
        client.close()


def test_no_session_bus_or_no_atspi_is_a_warning_and_no_op(caplog: pytest.LogCaptureFixture) -> None:
    events = Collected()
    caplog.set_level(logging.WARNING)
    for address in ("", "unix:path=/nonexistent/shadowdesk-test-bus"):
        sensor = AccessibilitySensor(":99", events, interval_s=1, poll_s=0.1, session_bus=address)
        sensor.run(threading.Event())  # returns at once instead of failing or spinning
    assert len([r for r in caplog.records if "accessibility sensor off" in r.getMessage()]) == 2
    assert events.of("text") == []
