"""Privacy on the desktop: the rules, and private windows on a real Xvfb with real xterms."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable

import pytest
from PIL import Image
from pydantic import ValidationError

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.config import AgentSettings
from session_agent.privacy import PrivacyRules
from session_agent.sensors.base import FocusState, Sensor
from session_agent.sensors.frames import FrameSensor
from session_agent.sensors.window import WindowSensor
from shadowdesk_common.desktop import VirtualDesktop
from tests.support.collected import Collected
from tests.support.polling import wait_until


@pytest.mark.parametrize(
    "title",
    [
        "New Tab - Chromium (Incognito)",
        "Mozilla Firefox Private Browsing",
        "Bank — Mozilla Firefox PRIVATE BROWSING",
        "New InPrivate tab - [InPrivate] - Microsoft Edge",
        "新标签页 - Google Chrome (无痕模式)",
        "新分頁 - Google Chrome (無痕模式)",
        "Mozilla Firefox 隐私浏览",
        "新建标签页 - 隐身窗口",
    ],
)
def test_default_rules_find_private_browsing_titles_in_english_and_chinese(title: str) -> None:
    assert PrivacyRules().is_private("chromium", "chromium.Chromium", title)


@pytest.mark.parametrize("title", ["Incognito mode explained", "Private browsing FAQ"])
def test_titles_that_only_mention_private_modes_are_private_too(title: str) -> None:
    # Deliberately over-inclusive: a false positive loses a frame, a false negative leaks a window.
    assert PrivacyRules().is_private("firefox", "Navigator.firefox", title)


@pytest.mark.parametrize(
    "title", ["New Tab - Chromium", "privatebrowsingmode.txt - mousepad", "incognitos", "shell"]
)
def test_ordinary_titles_are_not_private(title: str) -> None:
    assert not PrivacyRules().is_private("xterm", "xterm.XTerm", title)


def test_excluded_apps_match_app_id_or_wm_class_case_insensitively() -> None:
    rules = PrivacyRules(exclude_apps=["KeePassXC", "seahorse"], title_patterns=[])
    assert rules.is_private("keepassxc", "keepassxc.KeePassXC", "Passwords.kdbx")
    assert rules.is_private("KEEPASSXC", "", "")
    assert rules.is_private("org.gnome.seahorse.application", "org.gnome.Seahorse.Application", "Passwords")
    assert not rules.is_private("xterm", "xterm.XTerm", "keepassxc notes")
    assert not rules.is_private("chromium", "chromium.Chromium", "Incognito"), "no title patterns given"


def settings(**values: object) -> AgentSettings:
    return AgentSettings(token="t", user_id="u", session_id="s", display="", sensors=set(), **values)  # type: ignore[arg-type]


def test_settings_build_rules_from_lists_and_reject_bad_regexes(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = PrivacyRules.from_settings(settings())
    assert defaults.is_private("bitwarden", "bitwarden.Bitwarden", "Vault")
    assert defaults.is_private("firefox", "", "Mozilla Firefox 隐私浏览")

    monkeypatch.setenv("SHADOWDESK_AGENT_EXCLUDE_APPS", "Signal, Thunderbird")
    monkeypatch.setenv("SHADOWDESK_AGENT_EXCLUDE_TITLE_PATTERNS", r'["^Salary\\b", "medical,? records"]')
    monkeypatch.setenv("SHADOWDESK_AGENT_PRIVATE_WINDOW_PATTERNS", "secret-mode")
    loaded = settings()
    assert loaded.exclude_apps == ["signal", "thunderbird"]
    assert loaded.exclude_title_patterns == [r"^Salary\b", "medical,? records"]
    rules = PrivacyRules.from_settings(loaded)
    assert rules.is_private("signal", "", "chat")
    assert rules.is_private("mousepad", "", "SALARY 2025.ods")
    assert rules.is_private("mousepad", "", "Medical records")
    assert rules.is_private("chromium", "", "Docs (Secret-Mode)")
    assert not rules.is_private("bitwarden", "", "Vault"), "an explicit list replaces the defaults"
    assert not rules.is_private("chromium", "", "Incognito"), "so do explicit private window patterns"

    with pytest.raises(ValidationError, match="invalid regular expression"):
        settings(exclude_title_patterns=["(unclosed"])
    monkeypatch.setenv("SHADOWDESK_AGENT_PRIVATE_WINDOW_PATTERNS", '["[a-"]')
    with pytest.raises(ValidationError, match="invalid regular expression"):
        settings()


def test_private_window_is_withheld_by_window_and_frame_sensors(
    desktop: VirtualDesktop, run_sensor: Callable[[Sensor], threading.Thread]
) -> None:
    _, secret = desktop.launch_xterm("Secret - Private Browsing")
    _, notes = desktop.launch_xterm("notes")
    desktop.xdotool("windowmove", str(secret), "0", "0")
    desktop.xdotool("windowmove", str(notes), "700", "0")
    events, focus, rules = Collected(), FocusState(), PrivacyRules()
    run_sensor(
        WindowSensor(
            desktop.display, events, poll_s=0.2, focus=focus, emit_focus=True, emit_apps=False, privacy=rules
        )
    )
    frames = FrameSensor(
        desktop.display,
        events,
        interval_s=0.05,
        max_width=1280,
        quality=90,
        min_distance=1,
        max_bytes=4 * 1024 * 1024,
        focused_window=lambda: focus.window_id,
        privacy=rules,
    )
    run_sensor(frames)

    def focus_of(window_id: int) -> list[pb.WindowFocus]:
        return [e.window_focus for e in events.of("window_focus") if e.window_focus.window_id == window_id]

    # A normal window focused: frames flow, with the private window blacked out.
    desktop.activate(notes)
    wait_until(lambda: any(e.frame.window_id == notes for e in events.of("frame")), what="a frame of notes")
    shot = next(e.frame for e in events.of("frame") if e.frame.window_id == notes)
    image = Image.open(io.BytesIO(shot.image)).convert("L")
    private_pixel, normal_pixel = image.getpixel((100, 100)), image.getpixel((800, 100))
    assert isinstance(private_pixel, int) and isinstance(normal_pixel, int)
    assert private_pixel < 40, "the private xterm (white) is blacked out"
    assert normal_pixel > 200, "the normal xterm is visible"

    # The private window focused: a private WindowFocus without title or class, and no frames.
    desktop.activate(secret)
    wait_until(lambda: bool(focus_of(secret)), what="focus event of the private window")
    hidden = focus_of(secret)[-1]
    assert (hidden.private, hidden.title, hidden.wm_class, hidden.app_id) == (True, "", "", "xterm")
    withheld = frames.withheld
    desktop.xdotool("type", "--window", str(secret), "hunter2")
    wait_until(lambda: frames.withheld > withheld, what="a screen change withheld")
    sent, withheld = frames.sent, frames.withheld
    desktop.set_title(notes, "notes (edited)")
    desktop.xdotool("type", "--window", str(secret), "more")
    # Later changes are withheld too (how many grabs they span depends on timing; at least one).
    wait_until(lambda: frames.withheld > withheld, what="more screen changes withheld")
    assert frames.sent == sent, "no frame while the private window has focus"
    desktop.set_title(secret, "Another - Private Browsing")
    assert all(not f.title for f in focus_of(secret))

    # Focus back on a normal window: frames resume (moved, so the screen differs from the last frame).
    desktop.activate(notes)
    desktop.xdotool("windowmove", str(notes), "700", "400")
    wait_until(lambda: frames.sent > sent, what="frames after leaving the private window")
    assert events.of("frame")[-1].frame.window_id == notes
    assert focus_of(notes)[-1].title == "notes (edited)" and not focus_of(notes)[-1].private


def test_rules_run_in_linear_time_and_refuse_what_cannot() -> None:
    """The agent matches every title it sees: a backtracking pattern must not stall its sensors."""
    rules = PrivacyRules(exclude_apps=(), title_patterns=["(a+)+$", r"\bincognito\b"])
    started = time.perf_counter()
    assert rules.is_private("xterm", "xterm.XTerm", "a" * 50_000) is True
    assert rules.is_private("xterm", "xterm.XTerm", "a" * 50_000 + "!") is False
    assert time.perf_counter() - started < 0.5
    with pytest.raises(ValueError, match="RE2"):
        settings(exclude_title_patterns=[r"(a)\1"])
