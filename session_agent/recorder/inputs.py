"""Pointer presses and named key commands, observed with the X RECORD extension while a recording is on.

RECORD hands a client every core device event the server processes (``KeyPress`` through
``ButtonRelease``, from every client and device, XTEST included) on a connection of its own; the
watcher parses them on its thread and keeps only:

* ``Press``: a button 1-3 press and where (root coordinates);
* ``KeyCommand``: a key pressed with Control, Alt or Super held (``ctrl+s``), or a named key
  (``Return``, ``Tab``, ``shift+Tab``, ``Escape``, ``F1``-``F24``), as its name;
* ``Input``: any other key or button, **without which one**: only that the user did something, for
  telling a wait from a pause in typing.

A text key's keycode is looked at only to tell that it is not a command and is dropped right there:
typed text is never kept, logged or passed on (fields are read back through accessibility instead).
Nothing runs when no recording is on: the RECORD context is created at start and freed at stop.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from Xlib import XK, X
from Xlib import error as xerror
from Xlib.display import Display
from Xlib.ext import record
from Xlib.protocol import rq

from session_agent.errors import ActionFailedError

logger = logging.getLogger(__name__)

STOP_JOIN_S = 3.0
# Keysyms of the "xkb" group, which python-xlib does not load by default.
ISO_LEFT_TAB = 0xFE20
_ISO_LEVEL3_SHIFT = 0xFE03
_COMMAND_MODIFIERS = ((X.ControlMask, "ctrl"), (X.Mod1Mask, "alt"), (X.Mod4Mask, "super"))
# Keys that are commands on their own (Return submits, Tab moves on, Escape cancels).
_NAMED_KEYS = {
    XK.XK_Return: "Return",
    XK.XK_KP_Enter: "Return",
    XK.XK_Tab: "Tab",
    ISO_LEFT_TAB: "Tab",
    XK.XK_Escape: "Escape",
    **{XK.XK_F1 + offset: f"F{offset + 1}" for offset in range(24)},
}
# X keysym names of the other keys (Home, End, Delete, Left, ...): what ``press`` replays by name.
_FUNCTION_KEYSYMS = 0xFF00
_KEYSYM_NAMES = {value: name[3:] for name, value in sorted(vars(XK).items()) if name.startswith("XK_")}
_MODIFIER_KEYSYMS = frozenset(
    {
        XK.XK_Shift_L,
        XK.XK_Shift_R,
        XK.XK_Control_L,
        XK.XK_Control_R,
        XK.XK_Alt_L,
        XK.XK_Alt_R,
        XK.XK_Meta_L,
        XK.XK_Meta_R,
        XK.XK_Super_L,
        XK.XK_Super_R,
        XK.XK_Caps_Lock,
        _ISO_LEVEL3_SHIFT,
    }
)


@dataclass(frozen=True)
class Input:
    """The user pressed something (which key or button is not kept)."""

    at: float = field(default_factory=time.monotonic)
    time_ns: int = field(default_factory=time.time_ns)


@dataclass(frozen=True)
class Press(Input):
    x: int = 0
    y: int = 0


@dataclass(frozen=True)
class KeyCommand(Input):
    keys: str = ""


def command_name(keysym: int, state: int) -> str | None:
    """The name of a key command (``ctrl+s``, ``Return``, ``shift+Tab``), or None for a text key."""
    if keysym in _MODIFIER_KEYSYMS or not keysym:
        return None
    modifiers = [name for mask, name in _COMMAND_MODIFIERS if state & mask]
    named = _NAMED_KEYS.get(keysym)
    if not modifiers and named is None:
        return None  # text (letters, digits, punctuation, space) and editing keys within a field
    if state & X.ShiftMask or keysym == ISO_LEFT_TAB:
        modifiers.append("shift")
    function_key = keysym >= _FUNCTION_KEYSYMS  # Home, Delete: keysym_to_string has no (or a wrong) text
    text = None if function_key else XK.keysym_to_string(keysym)
    key = named or text or _KEYSYM_NAMES.get(keysym) or f"{keysym:#x}"
    return "+".join([*modifiers, key.lower() if len(key) == 1 else key])


class InputWatcher:
    """A RECORD context on two X connections of its own; ``on_input`` is called on its thread."""

    def __init__(self, display_name: str, on_input: Callable[[Input], None]) -> None:
        self._display_name = display_name
        self._on_input = on_input
        self._control: Display | None = None
        self._data: Display | None = None
        self._context = 0
        self._keymap: dict[int, int] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._control = Display(self._display_name)
            self._data = Display(self._display_name)
        except (xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
            self.stop()
            raise ActionFailedError(f"cannot open X display {self._display_name!r}: {exc}") from exc
        control = self._control
        if not control.has_extension("RECORD"):
            self.stop()
            raise ActionFailedError("the X server lacks the RECORD extension: input cannot be observed")
        first = int(control.display.info.min_keycode)
        count = int(control.display.info.max_keycode) - first + 1
        self._keymap = {
            first + offset: keysyms[0] if keysyms else 0
            for offset, keysyms in enumerate(control.get_keyboard_mapping(first, count))
        }
        self._context = control.record_create_context(
            0,
            [record.AllClients],
            [
                {
                    "core_requests": (0, 0),
                    "core_replies": (0, 0),
                    "ext_requests": (0, 0, 0, 0),
                    "ext_replies": (0, 0, 0, 0),
                    "delivered_events": (0, 0),
                    "device_events": (X.KeyPress, X.ButtonPress),
                    "errors": (0, 0),
                    "client_started": False,
                    "client_died": False,
                }
            ],
        )
        control.sync()
        self._thread = threading.Thread(target=self._run, name="recorder-input", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        control, data, thread = self._control, self._data, self._thread
        if control is not None and self._context:
            with contextlib.suppress(xerror.XError, xerror.ConnectionClosedError, OSError):
                control.record_disable_context(self._context)
                control.sync()
        if thread is not None:
            thread.join(STOP_JOIN_S)
        if control is not None and self._context:
            with contextlib.suppress(xerror.XError, xerror.ConnectionClosedError, OSError):
                control.record_free_context(self._context)
                control.sync()
        for display in (data, control):
            if display is not None:
                with contextlib.suppress(xerror.ConnectionClosedError, OSError):
                    display.close()
        self._control = self._data = self._thread = None
        self._context = 0

    def _run(self) -> None:
        assert self._data is not None
        try:
            self._data.record_enable_context(self._context, self._received)
        except (xerror.XError, xerror.ConnectionClosedError, OSError) as exc:
            logger.warning("recording: X RECORD stopped: %s", exc)

    def _received(self, reply: Any) -> None:
        if reply.category != record.FromServer or reply.client_swapped or not reply.data:
            return
        data = reply.data
        while data:
            event, data = rq.EventField(None).parse_binary_value(data, self._data.display, None, None)  # type: ignore[union-attr]
            if event.type == X.ButtonPress:
                if event.detail in (1, 2, 3):
                    self._on_input(Press(x=int(event.root_x), y=int(event.root_y)))
                else:
                    self._on_input(Input())
            elif event.type == X.KeyPress:
                name = command_name(self._keymap.get(int(event.detail), 0), int(event.state))
                self._on_input(KeyCommand(keys=name) if name else Input())
