"""The executor's hands on the X display: top-level windows by WindowRef, focus through the window manager
(EWMH ``_NET_ACTIVE_WINDOW``), and keys and pointer clicks through the XTEST extension.

One ``X11Desktop`` is one X connection, opened for one action on the action's own thread. Keys are
only ever sent while the window they are meant for is the active one: ``type_text`` and
``press_keys`` check that before every key, so a window that steals the focus mid-way gets nothing.
Characters the keyboard map lacks (Chinese, accented letters) are typed by mapping their keysym onto
a spare keycode while the text is typed; the map is restored afterwards. The keyboard map is visible
to every X client, so which such characters were typed can be seen meanwhile (not which keys).
"""

from __future__ import annotations

import contextlib
import logging
import time
from types import TracebackType

from Xlib import XK, X
from Xlib import error as xerror
from Xlib.display import Display
from Xlib.protocol import event as xevent

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.errors import ActionFailedError
from session_agent.executor.protocol import ActionContext
from session_agent.sensors.window import WindowInfo, describe_window

logger = logging.getLogger(__name__)

ACTIVATE_TIMEOUT_S = 3.0
MAX_CHORD_KEYS = 6
# Keycodes lent to characters at once, and how long apps get to handle keys before a map change.
_MAX_BORROWED = 32
_SETTLE_S = 0.15
# How long apps get to reload the keyboard map after spare keycodes were mapped, before the first key.
_REMAP_SETTLE_S = 0.1
# How an EWMH client says who asks for the activation: 2 = a pager or tool acting for the user.
_SOURCE_PAGER = 2
_MODIFIERS = {
    "ctrl": "Control_L",
    "control": "Control_L",
    "shift": "Shift_L",
    "alt": "Alt_L",
    "super": "Super_L",
    "win": "Super_L",
    "meta": "Meta_L",
}
_ALIASES = {"enter": "Return", "esc": "Escape", "del": "Delete", "space": "space", "tab": "Tab"}
_CHAR_KEYSYMS: dict[str, int] = {"\n": XK.XK_Return, "\t": XK.XK_Tab}


def window_matches(window: WindowInfo, ref: pb.WindowRef) -> bool:
    """Whether ``window`` has every field ``ref`` sets (an empty ref matches every window)."""
    return (
        (not ref.window_id or window.window_id == ref.window_id)
        and (not ref.app_id or window.app_id == ref.app_id.lower())
        and (not ref.title_contains or ref.title_contains in window.title)
    )


def describe_ref(ref: pb.WindowRef) -> str:
    parts = [
        f"id {ref.window_id:#x}" if ref.window_id else "",
        f"app {ref.app_id!r}" if ref.app_id else "",
        f"title containing {ref.title_contains!r}" if ref.title_contains else "",
    ]
    return ", ".join(part for part in parts if part) or "the active window"


def keysym_of_char(char: str) -> int:
    """The keysym of one character: Latin-1 keysyms are the code point, others 0x01000000 + code point."""
    if char in _CHAR_KEYSYMS:
        return _CHAR_KEYSYMS[char]
    code = ord(char)
    return code if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF else 0x01000000 | code


def parse_chord(keys: str) -> list[int]:
    """Keysyms of "ctrl+shift+t" style chords, modifiers first; ActionFailedError for an unknown name."""
    names = [name.strip() for name in keys.split("+")]
    if not keys or not all(names) or len(names) > MAX_CHORD_KEYS:
        raise ActionFailedError(f"keys must be 1-{MAX_CHORD_KEYS} key names joined by '+', e.g. 'ctrl+s'")
    keysyms = []
    for name in names:
        lookup = _MODIFIERS.get(name.lower()) or _ALIASES.get(name.lower()) or name
        keysym = XK.string_to_keysym(lookup)
        if not keysym and len(name) == 1:
            keysym = keysym_of_char(name)
        if not keysym:
            raise ActionFailedError(f"unknown key name {name!r} (X keysym names: Return, Escape, F5, a, ...)")
        keysyms.append(keysym)
    return keysyms


class X11Desktop:
    """One X connection for one action; a context manager."""

    def __init__(self, display_name: str) -> None:
        if not display_name:
            raise ActionFailedError("this agent has no X display")
        try:
            self.display = Display(display_name)
        except (xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
            raise ActionFailedError(f"cannot open X display {display_name!r}: {exc}") from exc
        # Errors of requests without replies (a window that vanished) arrive asynchronously: expected.
        self.display.set_error_handler(lambda err, request: logger.debug("X error ignored: %s", err))
        self.root = self.display.screen().root
        self._active_atom = self.display.get_atom("_NET_ACTIVE_WINDOW")
        # keysym -> spare keycode mapped to it while typing (characters the keyboard map lacks)
        self._borrowed: dict[int, int] = {}
        self._spare: list[int] = []

    def __enter__(self) -> X11Desktop:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(xerror.ConnectionClosedError, OSError):
            self.display.close()

    def active_window_id(self) -> int:
        prop = self.root.get_full_property(self._active_atom, X.AnyPropertyType)
        return int(prop.value[0]) if prop is not None and len(prop.value) else 0

    def active_window(self) -> WindowInfo | None:
        window_id = self.active_window_id()
        if not window_id:
            return None
        return describe_window(self.display, self.display.create_resource_object("window", window_id))

    def windows(self) -> list[WindowInfo]:
        """The top-level client windows, oldest first."""
        prop = self.root.get_full_property(self.display.get_atom("_NET_CLIENT_LIST"), X.AnyPropertyType)
        found = []
        for window_id in prop.value if prop is not None else ():
            info = describe_window(
                self.display, self.display.create_resource_object("window", int(window_id))
            )
            if info is not None:
                found.append(info)
        return found

    def close_window(self, window_id: int) -> None:
        """Ask the window manager to close the window, as its close button would (EWMH
        ``_NET_CLOSE_WINDOW``): the app gets WM_DELETE_WINDOW and may save or ask first."""
        message = xevent.ClientMessage(
            window=self.display.create_resource_object("window", window_id),
            client_type=self.display.get_atom("_NET_CLOSE_WINDOW"),
            data=(32, [X.CurrentTime, _SOURCE_PAGER, 0, 0, 0]),
        )
        mask = X.SubstructureRedirectMask | X.SubstructureNotifyMask
        self.root.send_event(message, event_mask=mask)
        self.display.flush()

    def find(self, ref: pb.WindowRef) -> WindowInfo:
        """The window ``ref`` names: the active one if it matches, else the newest match."""
        active = self.active_window()
        if active is not None and window_matches(active, ref):
            return active
        matches = [window for window in self.windows() if window_matches(window, ref)]
        if not matches:
            raise ActionFailedError(f"no window matches {describe_ref(ref)}")
        return matches[-1]

    def origin(self, window_id: int) -> tuple[int, int]:
        """Where the window's top-left corner is on the screen (root coordinates)."""
        window = self.display.create_resource_object("window", window_id)
        try:
            translated = window.translate_coords(self.root, 0, 0)
        except (xerror.BadWindow, xerror.BadDrawable) as exc:
            raise ActionFailedError(f"window {window_id:#x} is gone") from exc
        return -int(translated.x), -int(translated.y)

    def bounds(self, window_id: int) -> tuple[int, int, int, int]:
        """The window's rectangle on the screen: left, top, width and height (root coordinates)."""
        left, top = self.origin(window_id)
        window = self.display.create_resource_object("window", window_id)
        try:
            geometry = window.get_geometry()
        except (xerror.BadWindow, xerror.BadDrawable) as exc:
            raise ActionFailedError(f"window {window_id:#x} is gone") from exc
        return left, top, int(geometry.width), int(geometry.height)

    def activate(self, window: WindowInfo, context: ActionContext) -> None:
        """Ask the window manager to focus and raise ``window``; wait until it is the active window."""
        if self.active_window_id() == window.window_id:
            return
        target = self.display.create_resource_object("window", window.window_id)
        message = xevent.ClientMessage(
            window=target, client_type=self._active_atom, data=(32, [_SOURCE_PAGER, X.CurrentTime, 0, 0, 0])
        )
        self.root.send_event(message, event_mask=X.SubstructureRedirectMask | X.SubstructureNotifyMask)
        self.display.flush()
        deadline = time.monotonic() + min(ACTIVATE_TIMEOUT_S, max(0.0, context.remaining()))
        while self.active_window_id() != window.window_id:
            if time.monotonic() >= deadline:
                raise ActionFailedError(f"window {window.window_id:#x} did not become active")
            context.sleep(0.02)

    def press_chord(self, keysyms: list[int], window_id: int, context: ActionContext) -> None:
        """Press the keys in order and release them in reverse (e.g. Control_L, s)."""
        self._require_focus(window_id, context)
        keycodes = [self._keycode(keysym)[0] for keysym in keysyms]
        try:
            for keycode in keycodes:
                self.display.xtest_fake_input(X.KeyPress, keycode)
        finally:
            for keycode in reversed(keycodes):
                self.display.xtest_fake_input(X.KeyRelease, keycode)
            self.display.sync()
            self._release_scratch()

    def type_text(self, text: str, window_id: int, context: ActionContext) -> None:
        """Type ``text`` key by key into ``window_id``, which must stay the active window throughout.

        Characters the keyboard map lacks (Chinese) are mapped to spare keycodes before the first key
        of the stretch that uses them, then the apps get a moment: an app reloads its map when told it
        changed, and a key pressed right after the change is read with the old map (the character is
        lost)."""
        shift = self.display.keysym_to_keycode(XK.XK_Shift_L)
        keysyms = [keysym_of_char(char) for char in text]
        try:
            start = 0
            while start < len(keysyms):
                end, mapped = self._map_stretch(keysyms, start)
                if mapped:
                    context.sleep(_REMAP_SETTLE_S)
                for keysym in keysyms[start:end]:
                    self._require_focus(window_id, context)
                    keycode, shifted = self._keycode(keysym)
                    if shifted:
                        self.display.xtest_fake_input(X.KeyPress, shift)
                    self.display.xtest_fake_input(X.KeyPress, keycode)
                    self.display.xtest_fake_input(X.KeyRelease, keycode)
                    if shifted:
                        self.display.xtest_fake_input(X.KeyRelease, shift)
                    self.display.sync()
                start = end
        finally:
            self._release_scratch()

    def _map_stretch(self, keysyms: list[int], start: int) -> tuple[int, bool]:
        """Map spare keycodes, in one change of the map, to the keysyms from ``start`` on that the keyboard
        lacks, as far as the spare keycodes go: where that stretch ends, and whether anything was mapped."""
        wanted: list[int] = []
        end = start
        while end < len(keysyms):
            keysym = keysyms[end]
            if keysym not in self._borrowed and keysym not in wanted and self._on_keyboard(keysym) is None:
                if not self._spare:
                    self._spare = self._spare_keycodes()
                if len(self._borrowed) + len(wanted) == len(self._spare):
                    if end > start:
                        break  # type this stretch before its keycodes are taken back
                    self._release_scratch()
                wanted.append(keysym)
            end += 1
        self._borrow(wanted)
        return end, bool(wanted)

    def click(self, x: int, y: int, window_id: int, context: ActionContext) -> None:
        """A left click at root coordinates (x, y) while ``window_id`` is active."""
        self._require_focus(window_id, context)
        self.display.xtest_fake_input(X.MotionNotify, x=x, y=y)
        self.display.xtest_fake_input(X.ButtonPress, 1)
        self.display.xtest_fake_input(X.ButtonRelease, 1)
        self.display.sync()

    def _require_focus(self, window_id: int, context: ActionContext) -> None:
        context.check()
        if self.active_window_id() != window_id:
            raise ActionFailedError(f"window {window_id:#x} lost the focus; no more keys were sent")

    def _keycode(self, keysym: int) -> tuple[int, bool]:
        """A keycode typing ``keysym`` and whether Shift is needed; maps a spare keycode if none does.

        A mapped keycode keeps its keysym until the text is typed: apps such as Chromium look the map
        up again when they handle the key, so changing it right after the key press would lose it.
        """
        if keysym in self._borrowed:
            return self._borrowed[keysym], False
        if (found := self._on_keyboard(keysym)) is not None:
            return found
        if not self._spare:
            self._spare = self._spare_keycodes()
        if len(self._borrowed) == len(self._spare):
            self._release_scratch()  # every spare keycode is in use: start over
        self._borrow([keysym])
        return self._borrowed[keysym], False

    def _borrow(self, keysyms: list[int]) -> None:
        """Map the next spare keycodes to ``keysyms`` (none of them on the keyboard)."""
        keycodes = self._spare[len(self._borrowed) : len(self._borrowed) + len(keysyms)]
        self._change_map(dict(zip(keycodes, keysyms, strict=True)))
        self._borrowed.update(zip(keysyms, keycodes, strict=True))

    def _change_map(self, keysym_of: dict[int, int]) -> None:
        """Give each keycode its keysym (0: none) in one request over their range: the apps and the window
        manager hear of one change of the map, not one per keycode (each makes them reload it)."""
        if not keysym_of:
            return
        first, last = min(keysym_of), max(keysym_of)
        rows = self.display.get_keyboard_mapping(first, last - first + 1)
        width = len(rows[0])
        self.display.change_keyboard_mapping(
            first,
            [
                (keysym_of[keycode],) * width if keycode in keysym_of else tuple(row)
                for keycode, row in enumerate(rows, first)
            ],
        )
        self.display.sync()
        self.display._update_keymap(first, last - first + 1)  # python-xlib's cache; it wants an event

    def _on_keyboard(self, keysym: int) -> tuple[int, bool] | None:
        """A keycode of the keyboard map that types ``keysym``, and whether Shift is needed."""
        for keycode, index in self.display.keysym_to_keycodes(keysym):
            if index in (0, 1):
                return keycode, index == 1
        return None

    def _spare_keycodes(self) -> list[int]:
        first = int(self.display.display.info.min_keycode)
        count = self.display.display.info.max_keycode - first + 1
        mapping = self.display.get_keyboard_mapping(first, count)
        spare = [first + offset for offset, keysyms in enumerate(mapping) if not any(keysyms)]
        if not spare:
            raise ActionFailedError("the keyboard map has no spare keycode for a character it lacks")
        return spare[-_MAX_BORROWED:]

    def _release_scratch(self) -> None:
        """Give the borrowed keycodes their empty mapping back."""
        if not self._borrowed:
            return
        time.sleep(_SETTLE_S)  # the last keys typed with them are handled by now
        self._change_map(dict.fromkeys(self._borrowed.values(), 0))
        self._borrowed.clear()
