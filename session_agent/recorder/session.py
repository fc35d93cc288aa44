"""One recording: what the user does, turned into RecordedAction events, on a thread of its own.

Inputs (``inputs.InputWatcher``: presses, key commands, and that some other key was pressed) and
accessibility events (``events.AccessibleEvents``: focus, text changed, UI changed) go into one queue;
the recording's thread takes them in order and, every ``_TICK_S`` meanwhile, checks the active
window; at the stop it still takes what was queued before (it can lag behind a slow app's copy).
It emits:

* ``FOCUS`` when the active window (or its title) changes, ``STARTED`` first and ``STOPPED`` last;
* ``CLICK`` with the element under the pointer (hit test in the window under it; an open drop-down's
  entry when the focused element is one), done at the press, before the app reacts to it;
* ``FIELD_VALUE`` when the field that had the focus holds another value than it had when it got the
  focus (or than the last one recorded): checked before each click and key command, when the focus
  moves on, and at stop. Read through accessibility (``identity.field_value``). A password field
  gives ``secret`` and no value, once the app reported its text changed;
* the focused element is the one the app last reported, taken once the active window is that app's
  (an app can report its focus before the window manager makes its window the active one);
* ``KEY_COMMAND`` with the command's name and the focused element; ``COPY`` after ctrl+c/ctrl+x
  (the focused element and the clipboard's new text, once the app has put it there) and ``PASTE``
  at ctrl+v/shift+Insert (the focused element and the clipboard's text);
* ``WAIT`` before an input that came ``wait_min_s`` or more after the previous one, when the UI
  changed in between: ``waited_ms`` from the previous input to the last change.

In a private window (``session_agent.privacy``) only FOCUS with the app id is recorded.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from jeepney import DBusErrorResponse
from Xlib import X
from Xlib import error as xerror

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.errors import ActionFailedError, ExecutorError
from session_agent.executor.clipboard import read_clipboard
from session_agent.executor.elements import STATE_EDITABLE, Accessibility, Element
from session_agent.executor.identity import (
    ROLES_WITH_OPTIONS,
    Node,
    element_ref,
    extents,
    field_value,
    hit_test,
    parent_of,
)
from session_agent.executor.protocol import MAX_OBSERVED_CHARS, ActionContext
from session_agent.executor.x11 import X11Desktop
from session_agent.privacy import PrivacyRules
from session_agent.recorder.events import AccessibleEvent, AccessibleEvents, Focused, TextChanged, UiChanged
from session_agent.recorder.inputs import Input, InputWatcher, KeyCommand, Press
from session_agent.sensors.accessibility import ACCESSIBLE, STATE_SHOWING
from session_agent.sensors.base import new_event
from session_agent.sensors.window import MAX_NAME_CHARS, MAX_TITLE_CHARS, WindowInfo

logger = logging.getLogger(__name__)

A = pb.RecordedAction
_TICK_S = 0.2
# Budget of the accessibility calls made for one input or event.
_STEP_BUDGET_S = 3.0
# How long after ctrl+c the app gets to take the clipboard before its text is read, how long it may take
# at most (a loaded desktop), and how often the clipboard is read meanwhile.
_COPY_SETTLE_S = 0.25
_COPY_WAIT_S = 1.5
_COPY_POLL_S = 0.1
_CLICK_FOCUS_S = 0.4
# How long a focus reported in another app waits for its window to become the active one.
_FOCUS_WINDOW_S = 1.0
# What a hit test may give while the page under the pointer is still being hit-tested: asked again.
_CONTAINER_ROLES = frozenset({"form", "panel", "section", "document web", "filler", "grouping"})
# A drop-down opens its popup at the press (Chromium): a hit on the popup itself is on the drop-down.
_POPUP_ROLES = frozenset({"menu", "list", "window"})
_DROPDOWN_SETTLE_S = 0.3
_POPUP_OPEN_S = 5.0  # a loaded desktop can take seconds to expose an opened popup
# The cloud's bound of a recorded wait (an hour).
_MAX_WAITED_MS = 3_600_000

_COPY_KEYS = frozenset({"ctrl+c", "ctrl+x", "ctrl+Insert"})
_PASTE_KEYS = frozenset({"ctrl+v", "shift+Insert"})


@dataclass
class _Field:
    """The element that has the keyboard focus, and what was recorded of it."""

    element: Element
    ref: pb.ElementRef
    editable: bool
    secret: bool
    recorded: str | None  # its value when it got the focus, then the last FIELD_VALUE sent
    last_read: str | None = None
    edited: bool = False  # the app reported a text change since the last FIELD_VALUE
    # A FIELD_VALUE was recorded for it: a text change reported before its value at focus was read
    # (the read comes late when the user is quick) still makes it edited once.
    emitted: bool = False


class Recording:
    """Started by ``start`` (STARTED), stopped by ``stop(reason)`` or its time limit (STOPPED)."""

    def __init__(
        self,
        recording_id: str,
        *,
        display: str,
        session_bus: str,
        privacy: PrivacyRules,
        emit: Callable[[pb.Event], None],
        max_s: float,
        wait_min_s: float,
        clipboard_max_chars: int,
    ) -> None:
        self.recording_id = recording_id
        self._display = display
        self._session_bus = session_bus
        self._privacy = privacy
        self._emit_event = emit
        self._max_s = max_s
        self._wait_min_s = wait_min_s
        self._clipboard_max_chars = clipboard_max_chars
        self._queue: queue.Queue[Input | AccessibleEvent] = queue.Queue()
        self._stop = threading.Event()
        self._reason = ""
        self._thread: threading.Thread | None = None
        self._inputs = InputWatcher(display, self._queue.put)
        self._events = AccessibleEvents(session_bus, self._queue.put)
        self._x11: X11Desktop | None = None
        self._a11y: Accessibility | None = None
        self._window: WindowInfo | None = None
        self._frames: dict[tuple[int, str], Node] = {}
        self._field: _Field | None = None
        # The drop-down clicked last: its popup is a window of its own that takes the focus, so its
        # value is checked after a click on one of its entries rather than when the focus moves.
        self._dropdown: _Field | None = None
        self._dropdown_due = 0.0
        # Where the open drop-down's entries are on the screen, taken while its popup shows (it closes
        # at the click that picks one, before that click is looked at), and until when to try.
        self._entries: list[tuple[Node, tuple[int, int, int, int]]] = []
        self._entries_until = 0.0
        # A click waits up to _CLICK_FOCUS_S for the focus it gives (a better answer than a hit test
        # on a page still laying out).
        self._click: tuple[Press, WindowInfo, Node | None, pb.ElementRef] | None = None
        # The clipboard's text as last read (at a copy or a paste): a new copy waits for other text.
        self._clipboard_seen: str | None = None
        self._last_input = time.monotonic()
        self._last_change = 0.0
        self._started = time.monotonic()
        self.actions = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Open what the recording needs and emit STARTED; ActionFailedError when the desktop cannot be
        observed (no RECORD extension, no AT-SPI)."""
        try:
            self._x11 = X11Desktop(self._display)
            self._a11y = Accessibility(self._session_bus)
            self._events.start()
            self._inputs.start()
        except ActionFailedError:
            self._close()
            raise
        self._started = time.monotonic()
        self._record(A.KIND_STARTED, window=None)
        self._check_window()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def stop(self, reason: str) -> None:
        """Stop and emit STOPPED (``value``: why); waits for the recording's thread."""
        if not self._reason:
            self._reason = reason
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(_STEP_BUDGET_S * 3)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if time.monotonic() - self._started >= self._max_s:
                    self._reason = self._reason or "max_duration"
                    break
                try:
                    item = self._queue.get(timeout=_TICK_S)
                except queue.Empty:
                    item = None
                self._step(item)
        except Exception:  # a thread of its own: nothing above it would see the error
            logger.exception("recording %s failed; stopped", self.recording_id)
            self._reason = self._reason or "failed"
        finally:
            self._finish()

    def _finish(self) -> None:
        self._inputs.stop()
        self._events.stop()
        try:
            self._drain()
            if self._click is not None:
                self._emit_click()
            self._flush_field()
            if self._dropdown is not None:
                self._flush(self._dropdown)
        except Exception:
            logger.exception("recording %s: the last field could not be read", self.recording_id)
        self._record(A.KIND_STOPPED, window=None, value=self._reason or "stopped")
        self._close()
        logger.info("recording %s stopped (%s): %d actions", self.recording_id, self._reason, self.actions)

    def _close(self) -> None:
        self._inputs.stop()
        self._events.stop()
        if self._a11y is not None:
            self._a11y.client.close()
        if self._x11 is not None:
            self._x11.close()

    def _drain(self) -> None:
        """Take what the user did before the stop that the recording had not taken yet (it lags behind
        while it waits for a slow app's copy), without looking at the windows again: they are as the
        user left them after the last input, not as they were at it."""
        deadline = time.monotonic() + _STEP_BUDGET_S
        while time.monotonic() < deadline:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            self._step(item, look=False)

    def _step(self, item: Input | AccessibleEvent | None, *, look: bool = True) -> None:
        try:
            if look:
                self._check_window()
            now = time.monotonic()
            if self._click is not None and (
                now - self._click[0].at >= _CLICK_FOCUS_S or isinstance(item, Input)
            ):
                self._emit_click()
            if self._dropdown is not None and not self._entries and now < self._entries_until:
                self._entries = self._showing_entries(self._dropdown.element.node, _context())
            if self._dropdown is not None and self._dropdown_due and now >= self._dropdown_due:
                self._flush(self._dropdown)
                self._dropdown = None
            if isinstance(item, Input):
                self._input(item)
            elif isinstance(item, Focused):
                self._focused(item.node)
            elif isinstance(item, TextChanged):
                if self._field is not None and self._field.element.node == item.node:
                    self._field.edited = True
            elif isinstance(item, UiChanged):
                self._last_change = item.at
        except (DBusErrorResponse, TimeoutError, ExecutorError) as exc:
            logger.debug("recording %s: %s skipped: %s", self.recording_id, type(item).__name__, exc)
        except (xerror.XError, xerror.ConnectionClosedError, OSError) as exc:
            logger.warning("recording %s: lost the X display: %s", self.recording_id, exc)
            self._reason = "display_lost"
            self._stop.set()

    def _input(self, item: Input) -> None:
        if item.at - self._last_input >= self._wait_min_s and self._last_change > self._last_input:
            waited_ms = round((self._last_change - self._last_input) * 1000)
            self._record(A.KIND_WAIT, window=self._window, waited_ms=waited_ms)
        self._last_input = item.at
        if isinstance(item, Press):
            self._press(item)
        elif isinstance(item, KeyCommand):
            self._key_command(item)

    def _press(self, press: Press) -> None:
        x11, a11y = self._hands()
        window = self._window_at(x11, press.x, press.y)
        if window is None or self._is_private(window):
            return
        context = _context()
        entry = self._dropdown_entry_at(press.x, press.y, context)
        self._flush_field()
        if entry is None and self._dropdown is not None:
            self._flush(self._dropdown)
            self._dropdown = None
        self._entries = []
        frame = self._frame(window)
        node = entry
        if node is None and frame is not None:
            node = hit_test(a11y, frame, press.x, press.y, context)
            if node is not None and self._role(node, context) in _CONTAINER_ROLES:
                node = hit_test(a11y, frame, press.x, press.y, context) or node
            if node is not None:
                node = self._dropdown_of_popup(node, context)
        origin = x11.origin(window.window_id)
        if node is None or frame is None:
            # No accessible there: where it was is all a replay has.
            ref = pb.ElementRef(
                window=_window_ref(window),
                bounds=pb.Rect(x=press.x - origin[0], y=press.y - origin[1], width=1, height=1),
            )
            self._record(A.KIND_CLICK, window=window, element=ref, time_ns=press.time_ns)
            return
        element = self._element(node, window, context)
        ref = element_ref(a11y, element, frame, origin, context)
        if entry is not None:
            self._record(A.KIND_CLICK, window=window, element=ref, time_ns=press.time_ns)
            self._dropdown_due = time.monotonic() + _DROPDOWN_SETTLE_S
            return
        if element.role in ROLES_WITH_OPTIONS:
            value = field_value(a11y, element, context)
            self._dropdown = _Field(element, ref, True, False, value, value)
            self._dropdown_due = 0.0
            self._entries = self._showing_entries(node, context)
            self._entries_until = time.monotonic() + _POPUP_OPEN_S
        self._click = (press, window, frame, ref)

    def _emit_click(self, focused: Element | None = None, focused_ref: pb.ElementRef | None = None) -> None:
        """Record the pending click, with the element it gave the focus to when that lies under it."""
        assert self._click is not None
        press, window, _, ref = self._click
        self._click = None
        shallow = (
            focused_ref is not None
            and ref.role not in ROLES_WITH_OPTIONS
            and len(ref.path) < len(focused_ref.path)
            and list(focused_ref.path[: len(ref.path)]) == list(ref.path)
        )
        if focused is not None and focused_ref is not None and shallow:
            bounds = focused_ref.bounds
            left, top = self._hands()[0].origin(window.window_id)
            x, y = press.x - left, press.y - top
            if bounds.x <= x < bounds.x + bounds.width and bounds.y <= y < bounds.y + bounds.height:
                ref = focused_ref
        self._record(A.KIND_CLICK, window=window, element=ref, time_ns=press.time_ns)

    def _key_command(self, key: KeyCommand) -> None:
        window = self._window
        if window is None or self._is_private(window):
            return
        self._flush_field()
        field = self._field
        element = field.ref if field is not None else None
        self._record(A.KIND_KEY_COMMAND, window=window, element=element, keys=key.keys, time_ns=key.time_ns)
        if key.keys in _COPY_KEYS:
            text = self._copied_text()
            if text is not None:
                self._record(A.KIND_COPY, window=window, element=element, value=text)
        elif key.keys in _PASTE_KEYS:
            secret = field is not None and field.secret
            text = self._clipboard()
            if text is not None:
                self._clipboard_seen = text
                self._record(
                    A.KIND_PASTE, window=window, element=element, value="" if secret else text, secret=secret
                )

    def _copied_text(self) -> str | None:
        """The clipboard once the app has taken the copy: read until it holds text other than what the
        recording saw there last (a busy app takes its time), at most ``_COPY_WAIT_S``; then what it
        holds (the same text copied again)."""
        deadline = time.monotonic() + _COPY_WAIT_S
        self._stop.wait(_COPY_SETTLE_S)
        while True:
            text = self._clipboard()
            if (text and text != self._clipboard_seen) or time.monotonic() >= deadline:
                break
            if self._stop.wait(_COPY_POLL_S):
                break
        if text is not None:
            self._clipboard_seen = text
        return text

    def _focused(self, node: Node) -> None:
        """The keyboard focus moved to ``node``: the field it left is done."""
        if self._field is not None and self._field.element.node == node:
            return
        self._flush_field()
        self._field = None
        found = self._window_of(node)
        if found is None:
            return
        window, frame = found
        if self._is_private(window):
            return
        x11, a11y = self._hands()
        context = _context()
        element = self._element(node, window, context)
        ref = element_ref(a11y, element, frame, x11.origin(window.window_id), context)
        if self._click is not None:
            self._emit_click(element, ref)
        secret = a11y.is_protected(element, context)
        editable = (
            secret
            or element.role in ROLES_WITH_OPTIONS
            or bool(a11y.states(element, context) >> STATE_EDITABLE & 1)
        )
        value = None if secret or not editable else field_value(a11y, element, context)
        self._field = _Field(element, ref, editable, secret, value, value)

    def _window_of(self, node: Node) -> tuple[WindowInfo, Node] | None:
        """The active window and its frame, once it is the window (the app) ``node`` is in; None when it
        does not become so soon. An app reports its focus as soon as the window manager hands it the
        keyboard, which can be before the active window changes: the element would then be recorded
        in the window left, without a path, and a loop's rows would not look alike."""
        deadline = time.monotonic() + _FOCUS_WINDOW_S
        while True:
            window = self._window
            frame = self._frame(window) if window is not None else None
            if window is not None and frame is not None and frame[0] == node[0]:
                return window, frame
            if time.monotonic() >= deadline or self._stop.wait(_TICK_S / 4):
                return None
            self._check_window()

    def _flush_field(self) -> None:
        """Record the focused field's value if it changed since it was last recorded."""
        if self._field is not None:
            self._flush(self._field)

    def _flush(self, field: _Field) -> None:
        if not field.editable:
            return
        if field.secret:
            if field.edited:
                field.edited = False
                self._record(A.KIND_FIELD_VALUE, window=field.element.window, element=field.ref, secret=True)
            return
        a11y = self._hands()[1]
        # Gone with its page: the value read last is its final one.
        with contextlib.suppress(DBusErrorResponse, TimeoutError, ExecutorError):
            field.last_read = field_value(a11y, field.element, _context())
        changed = field.last_read != field.recorded or (field.edited and not field.emitted)
        field.edited = False
        if field.last_read is not None and changed:
            field.recorded = field.last_read
            field.emitted = True
            self._record(
                A.KIND_FIELD_VALUE, window=field.element.window, element=field.ref, value=field.last_read
            )
            # The same drop-down may be tracked both ways (focused, and clicked): recorded once.
            for other in (self._field, self._dropdown):
                if other is not None and other is not field and other.element.node == field.element.node:
                    other.recorded = other.last_read = field.last_read
                    other.emitted = True

    def _check_window(self) -> None:
        x11 = self._x11
        if x11 is None:
            return
        window = x11.active_window()
        previous = self._window
        if window is None or (
            previous is not None and (window.window_id, window.title) == (previous.window_id, previous.title)
        ):
            return
        self._window = window
        if previous is not None:
            self._last_change = time.monotonic()
        self._record(A.KIND_FOCUS, window=window)

    def _showing_entries(
        self, dropdown: Node, context: ActionContext
    ) -> list[tuple[Node, tuple[int, int, int, int]]]:
        """The showing entries of a drop-down (its own children, or its popup's) with their extents."""
        a11y = self._hands()[1]
        found = []
        for holder in [dropdown, *_children(a11y, dropdown, context)[:2]]:
            for entry in _children(a11y, holder, context):
                low, _ = a11y.call(entry, ACCESSIBLE, "GetState", context)
                if int(low) >> STATE_SHOWING & 1:
                    found.append((entry, extents(a11y, entry, context)))
        return found

    def _dropdown_entry_at(self, x: int, y: int, context: ActionContext) -> Node | None:
        """The entry of the open drop-down under (x, y): its popup is a window of its own."""
        if self._dropdown is None:
            return None
        for entry, (left, top, width, height) in self._entries:
            if width > 0 and height > 0 and left <= x < left + width and top <= y < top + height:
                return entry
        return None

    def _role(self, node: Node, context: ActionContext) -> str:
        return str(self._hands()[1].call(node, ACCESSIBLE, "GetRoleName", context))

    def _dropdown_of_popup(self, node: Node, context: ActionContext) -> Node:
        """The drop-down whose just-opened popup ``node`` is, else ``node``."""
        if self._role(node, context) not in _POPUP_ROLES:
            return node
        a11y = self._hands()[1]
        parent = parent_of(a11y, node, context)
        if parent is not None and self._role(parent, context) in ROLES_WITH_OPTIONS:
            return parent
        return node

    def _element(self, node: Node, window: WindowInfo, context: ActionContext) -> Element:
        a11y = self._hands()[1]
        role = str(a11y.call(node, ACCESSIBLE, "GetRoleName", context))
        name = str(a11y.get(node, ACCESSIBLE, "Name", context))
        return Element(node, role, name, (), window)

    def _frame(self, window: WindowInfo) -> Node | None:
        key = (window.window_id, window.title)
        if key not in self._frames:
            frame = self._hands()[1].frame(window)
            if frame is None:
                return None
            self._frames[key] = frame
        return self._frames[key]

    def _window_at(self, x11: X11Desktop, x: int, y: int) -> WindowInfo | None:
        """The topmost client window under (x, y)."""
        stacking = x11.root.get_full_property(
            x11.display.get_atom("_NET_CLIENT_LIST_STACKING"), X.AnyPropertyType
        )
        by_id = {window.window_id: window for window in x11.windows()}
        for window_id in reversed(list(stacking.value) if stacking is not None else []):
            window = by_id.get(int(window_id))
            if window is None:
                continue
            left, top = x11.origin(window.window_id)
            geometry = x11.display.create_resource_object("window", window.window_id).get_geometry()
            if left <= x < left + geometry.width and top <= y < top + geometry.height:
                return window
        return self._window

    def _clipboard(self) -> str | None:
        window = self._window
        if window is not None and self._is_private(window):
            return None
        try:
            return read_clipboard(self._display, self._clipboard_max_chars, _context())
        except ActionFailedError as exc:
            logger.debug("recording %s: the clipboard was not read: %s", self.recording_id, exc)
            return None

    def _hands(self) -> tuple[X11Desktop, Accessibility]:
        assert self._x11 is not None and self._a11y is not None
        return self._x11, self._a11y

    def _is_private(self, window: WindowInfo) -> bool:
        return self._privacy.is_private(window.app_id, window.wm_class, window.title)

    def _record(
        self,
        kind: A.Kind.ValueType,
        *,
        window: WindowInfo | None,
        element: pb.ElementRef | None = None,
        value: str = "",
        secret: bool = False,
        keys: str = "",
        waited_ms: int = 0,
        time_ns: int = 0,
    ) -> None:
        action = A(
            recording_id=self.recording_id,
            kind=kind,
            value=value[:MAX_OBSERVED_CHARS],
            secret=secret,
            keys=keys,
            waited_ms=min(waited_ms, _MAX_WAITED_MS),
        )
        if window is not None:
            action.window.CopyFrom(_window_ref(window))
            if not self._is_private(window):
                action.window_title = window.title[:MAX_TITLE_CHARS]
        if element is not None:
            action.element.CopyFrom(element)
        event = new_event()
        if time_ns:
            event.time_unix_nano = time_ns
        event.recorded.CopyFrom(action)
        self._emit_event(event)
        self.actions += 1


def _window_ref(window: WindowInfo) -> pb.WindowRef:
    return pb.WindowRef(window_id=window.window_id, app_id=window.app_id[:MAX_NAME_CHARS])


def _children(a11y: Accessibility, node: Node, context: ActionContext) -> list[Node]:
    return [(str(bus), str(path)) for bus, path in a11y.call(node, ACCESSIBLE, "GetChildren", context)]


def _context() -> ActionContext:
    """A budget for the accessibility calls of one step."""
    return ActionContext("recording", time.monotonic() + _STEP_BUDGET_S)
