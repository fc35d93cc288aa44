"""Selection sensor on a real Xvfb desktop: real xterms, and real X clients that own the selections."""

from __future__ import annotations

import queue
import select
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from Xlib import X
from Xlib.display import Display
from Xlib.protocol import event as xevent

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.errors import SensorError
from session_agent.privacy import PrivacyRules
from session_agent.sensors.base import Sensor
from session_agent.sensors.selection import SelectionSensor
from shadowdesk_common.desktop import VirtualDesktop
from tests.support.collected import Collected
from tests.support.polling import wait_until

DEBOUNCE_S = 0.3
CHINESE = "选中的文字：季度收入增长了百分之七"
RULES = PrivacyRules(exclude_apps=(), title_patterns=("secret",))


class SelectionOwner:
    """A real X client that takes PRIMARY or CLIPBOARD and serves its text as UTF8_STRING.

    With ``answers=False`` it takes selections but never answers a request for them.
    """

    def __init__(self, display: str, *, answers: bool = True) -> None:
        self.served: list[tuple[str, str]] = []
        self._display = Display(display)
        self._window = self._display.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        self._answers = answers
        self._texts: dict[int, str] = {}
        self._claims: queue.Queue[tuple[str, str, threading.Event]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __enter__(self) -> SelectionOwner:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._display.close()

    def claim(self, selection: str, text: str) -> None:
        """Own ``selection`` (PRIMARY or CLIPBOARD) with ``text`` from now on."""
        done = threading.Event()
        self._claims.put((selection, text, done))
        assert done.wait(5), "owner thread did not take the selection"

    def _serve(self) -> None:
        display = self._display
        utf8 = display.get_atom("UTF8_STRING")
        while not self._stop.is_set():
            while not self._claims.empty():
                name, text, done = self._claims.get_nowait()
                atom = display.get_atom(name)
                self._texts[atom] = text
                self._window.set_selection_owner(atom, X.CurrentTime)
                display.sync()
                done.set()
            if not display.pending_events():
                select.select([display], [], [], 0.02)
            while display.pending_events():
                request = display.next_event()
                if request.type != X.SelectionRequest or not self._answers:
                    continue
                text = self._texts.get(request.selection)
                prop = X.NONE
                if text is not None and request.target == utf8:
                    request.requestor.change_property(request.property, utf8, 8, text.encode())
                    prop = request.property
                    self.served.append((display.get_atom_name(request.selection), text))
                notify = xevent.SelectionNotify(
                    time=request.time,
                    requestor=request.requestor,
                    selection=request.selection,
                    target=request.target,
                    property=prop,
                )
                request.requestor.send_event(notify, event_mask=0)
                display.flush()


@pytest.fixture(scope="module")
def desktop_windows() -> Iterator[tuple[VirtualDesktop, int, int]]:
    """A desktop with an ordinary xterm ("notes") and a private one (its title matches RULES)."""
    with VirtualDesktop(width=1024, height=768) as desktop:
        _, notes = desktop.launch_xterm("notes")
        _, secret = desktop.launch_xterm("secret-vault")
        yield desktop, notes, secret


@pytest.fixture
def start_sensor(
    desktop_windows: tuple[VirtualDesktop, int, int], run_sensor: Callable[[Sensor], threading.Thread]
) -> Callable[..., tuple[SelectionSensor, Collected]]:
    desktop = desktop_windows[0]

    def start(
        max_chars: int = 8000, timeout_s: float = 1.0, debounce_s: float = DEBOUNCE_S
    ) -> tuple[SelectionSensor, Collected]:
        events = Collected()
        sensor = SelectionSensor(
            desktop.display,
            events,
            max_chars=max_chars,
            debounce_s=debounce_s,
            timeout_s=timeout_s,
            poll_s=0.1,
            privacy=RULES,
        )
        run_sensor(sensor)
        wait_until(sensor.ready.is_set, what="sensor listening")
        return sensor, events

    return start


def sent(events: Collected, *, primary: bool) -> list[pb.ClipboardText]:
    return [e.clipboard for e in events.of("clipboard") if e.clipboard.primary == primary]


def texts(events: Collected, *, primary: bool) -> list[str]:
    return [clipboard.text for clipboard in sent(events, primary=primary)]


@pytest.mark.e2e
def test_primary_is_read_once_stable_and_clipboard_at_once_in_utf8(
    desktop_windows: tuple[VirtualDesktop, int, int],
    start_sensor: Callable[..., tuple[SelectionSensor, Collected]],
) -> None:
    desktop, notes, _ = desktop_windows
    desktop.activate(notes)
    sensor, events = start_sensor()
    with SelectionOwner(desktop.display) as owner:
        # A drag: the owner takes PRIMARY again and again before the selection settles.
        for draft in ("f", "fi", "fin", "final"):
            owner.claim("PRIMARY", draft)
        owner.claim("PRIMARY", "final selection")
        wait_until(lambda: texts(events, primary=True) == ["final selection"], what="stable PRIMARY")
        assert owner.served == [("PRIMARY", "final selection")], "drafts were read"
        (first,) = sent(events, primary=True)
        assert first.app_id == "xterm"

        # The same text again is read but not sent again; CLIPBOARD is read without waiting.
        owner.claim("PRIMARY", "final selection")
        wait_until(lambda: len(owner.served) == 2, what="second read of PRIMARY")
        owner.claim("CLIPBOARD", CHINESE)
        wait_until(lambda: bool(sent(events, primary=False)), what="CLIPBOARD")
    (copied,) = sent(events, primary=False)
    assert (copied.text, copied.app_id, copied.primary) == (CHINESE, "xterm", False)
    assert texts(events, primary=True) == ["final selection"]
    assert sensor.failed_reads == 0
    assert all(e.time_unix_nano > 0 for e in events.of("clipboard"))


@pytest.mark.e2e
def test_primary_waits_while_the_selection_may_still_grow(
    desktop_windows: tuple[VirtualDesktop, int, int],
    start_sensor: Callable[..., tuple[SelectionSensor, Collected]],
) -> None:
    desktop, notes, _ = desktop_windows
    desktop.activate(notes)
    _, events = start_sensor()
    with SelectionOwner(desktop.display) as owner:
        # Shift held: the user may be extending the selection from the keyboard.
        desktop.xdotool("keydown", "shift")
        try:
            owner.claim("PRIMARY", "extended by keyboard")
            held_until = time.monotonic() + 3 * DEBOUNCE_S
            while time.monotonic() < held_until:
                assert not owner.served, "PRIMARY was read while Shift was held"
                time.sleep(0.05)  # watching for a read that must not happen
        finally:
            desktop.xdotool("keyup", "shift")
        wait_until(lambda: texts(events, primary=True) == ["extended by keyboard"], what="PRIMARY")


@pytest.mark.e2e
def test_a_real_xterm_selection_is_sent_once(
    desktop_windows: tuple[VirtualDesktop, int, int],
    start_sensor: Callable[..., tuple[SelectionSensor, Collected]],
) -> None:
    desktop = desktop_windows[0]
    xterm = desktop.launch(
        ["xterm", "-T", "selectable", "-e", "sh", "-c", "printf 'alpha beta gamma\\n'; exec sleep infinity"]
    )
    try:
        window = desktop.wait_for_window("selectable")
        desktop.activate(window)
        _, events = start_sensor()
        # A triple click selects the word, then the line: xterm takes PRIMARY for each.
        desktop.xdotool("mousemove", "--window", str(window), "12", "8")
        desktop.xdotool("click", "--repeat", "3", "--delay", "60", "1")
        wait_until(lambda: bool(sent(events, primary=True)), what="xterm's PRIMARY")
        (selected,) = sent(events, primary=True)
        assert (selected.text.strip(), selected.app_id) == ("alpha beta gamma", "xterm")
    finally:
        desktop.kill(xterm)


@pytest.mark.e2e
def test_an_owner_that_never_answers_does_not_stall_the_sensor(
    desktop_windows: tuple[VirtualDesktop, int, int],
    start_sensor: Callable[..., tuple[SelectionSensor, Collected]],
) -> None:
    desktop, notes, _ = desktop_windows
    desktop.activate(notes)
    sensor, events = start_sensor(timeout_s=0.3)
    with SelectionOwner(desktop.display, answers=False) as silent:
        silent.claim("CLIPBOARD", "never handed over")
        wait_until(lambda: sensor.failed_reads == 1, timeout_s=5, what="the read to time out")
    with SelectionOwner(desktop.display) as owner:
        owner.claim("CLIPBOARD", "after the silent one")
        wait_until(lambda: texts(events, primary=False) == ["after the silent one"], what="next copy")


@pytest.mark.e2e
def test_nothing_is_read_while_a_private_window_has_focus(
    desktop_windows: tuple[VirtualDesktop, int, int],
    start_sensor: Callable[..., tuple[SelectionSensor, Collected]],
) -> None:
    desktop, notes, secret = desktop_windows
    desktop.activate(secret)
    # Long enough that focus surely moves on before PRIMARY settles.
    sensor, events = start_sensor(debounce_s=1.0)
    with SelectionOwner(desktop.display) as owner:
        owner.claim("CLIPBOARD", "hunter2")
        owner.claim("PRIMARY", "hunter2 selected")
        # PRIMARY was selected in the private window: withheld though a public one has focus when it settles.
        desktop.activate(notes)
        wait_until(lambda: sensor.withheld == 2, what="both selections withheld")
        owner.claim("CLIPBOARD", "public copy")
        wait_until(lambda: bool(events.of("clipboard")), what="the public copy")
        assert owner.served == [("CLIPBOARD", "public copy")], "a private selection was read"
    assert [(e.clipboard.text, e.clipboard.app_id) for e in events.of("clipboard")] == [
        ("public copy", "xterm")
    ]


@pytest.mark.e2e
def test_long_text_is_cut_and_blank_text_is_not_sent(
    desktop_windows: tuple[VirtualDesktop, int, int],
    start_sensor: Callable[..., tuple[SelectionSensor, Collected]],
) -> None:
    desktop, notes, _ = desktop_windows
    desktop.activate(notes)
    _, events = start_sensor(max_chars=40)
    # 3-byte characters: the 160 bytes read from the X server end inside a character.
    long_text = "汉字" * 100
    with SelectionOwner(desktop.display) as owner:
        owner.claim("CLIPBOARD", " \n\t ")
        wait_until(lambda: len(owner.served) == 1, what="blank text read")
        owner.claim("CLIPBOARD", long_text)
        wait_until(lambda: bool(events.of("clipboard")), what="long text")
    assert texts(events, primary=False) == [long_text[:40]]


def test_an_unreachable_display_is_a_sensor_error() -> None:
    sensor = SelectionSensor(":987", Collected(), max_chars=100, debounce_s=0.1, timeout_s=0.1, poll_s=0.1)
    with pytest.raises(SensorError, match="cannot open X display ':987'"):
        sensor.run(threading.Event())
