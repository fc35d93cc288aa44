"""Selection sensor: the text the user selects (X PRIMARY selection) and copies (CLIPBOARD).

The X server tells the sensor through XFixes (SetSelectionOwnerNotify) whenever an app takes either
selection; nothing is read otherwise, and nothing is polled. The sensor then asks the owner to convert
the selection to ``UTF8_STRING`` into a property of its own unmapped window and reads it:

- **Debounce:** PRIMARY changes owner again and again while the user drags or extends a selection, so
  it is read only once it has kept its owner for ``debounce_s`` and no pointer button or Shift is held;
  the cloud wants the final text. CLIPBOARD (one owner change per copy) is read at once.
- **Deadline:** an owner that does not answer within ``timeout_s`` is given up on; so are owners that
  want the incremental protocol (INCR, for transfers of hundreds of KiB) or cannot give UTF-8. In
  both cases the sensor's window is replaced, so a late answer can never be taken for a later one.
- **Limits:** text is cut to ``max_chars`` characters (only that many bytes are read from the X
  server); empty and whitespace-only text is not sent, nor text identical to the last text sent for
  the same selection. Selections the agent itself owns, and those made before the sensor started
  (whose app cannot be told any more), are not read.
- **Privacy** (``session_agent.privacy``): nothing is read when the focused window was private when
  the owner changed or is private when the text would be read; the event's ``app_id`` is the
  focused window's app.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from Xlib import X
from Xlib import error as xerror
from Xlib.display import Display
from Xlib.ext import xfixes
from Xlib.xobject.drawable import Window

from session_agent.errors import SensorError
from session_agent.privacy import PrivacyRules
from session_agent.sensors.base import Emit, new_event
from session_agent.sensors.window import MAX_NAME_CHARS, describe_window

logger = logging.getLogger(__name__)

# The property of the sensor's window that owners write the converted text into.
PROPERTY = "_SHADOWDESK_SELECTION"
# While a drag holds PRIMARY open, how often the pointer is asked whether it is over.
DRAG_RECHECK_S = 0.05
# Buttons 1-3 drag or extend a selection; Shift extends it from the keyboard.
_SELECTING_MASK = X.Button1Mask | X.Button2Mask | X.Button3Mask | X.ShiftMask


@dataclass
class _Pending:
    """A selection whose new owner has not been read yet."""

    due: float
    # A private window had focus at one of the owner changes: the text may be that window's.
    private: bool


class ReadFailure(enum.Enum):
    TIMEOUT = "the owner did not answer in time"
    REFUSED = "the owner cannot give UTF8_STRING"
    INCR = "too large for one transfer (INCR)"


@dataclass(frozen=True)
class TextAtoms:
    """Atoms of one X connection: the target asked for, INCR, and the property the text goes to."""

    utf8: int
    incr: int
    property: int


def request_text(
    display: Display,
    window: Window,
    selection: int,
    atoms: TextAtoms,
    *,
    timeout_s: float,
    max_chars: int,
    on_event: Callable[[Any], None],
) -> str | ReadFailure:
    """Ask the owner of ``selection`` for its text as UTF-8 into ``window`` (ICCCM ConvertSelection) and
    read at most ``max_chars`` characters of it; other events that arrive meanwhile go to ``on_event``.
    After a TIMEOUT or INCR the caller should listen on a fresh window: a late answer may still come."""
    window.delete_property(atoms.property)
    window.convert_selection(selection, atoms.utf8, atoms.property, X.CurrentTime)
    display.flush()
    deadline = time.monotonic() + timeout_s
    while True:
        while display.pending_events():
            event = display.next_event()
            if (
                event.type == X.SelectionNotify
                and _resource_id(event.requestor) == window.id
                and event.selection == selection
            ):
                return _take(display, window, event.property, atoms, max_chars)
            on_event(event)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return ReadFailure.TIMEOUT
        select.select([display], [], [], remaining)


def _take(display: Display, window: Window, prop: int, atoms: TextAtoms, max_chars: int) -> str | ReadFailure:
    if prop == X.NONE:
        return ReadFailure.REFUSED
    # The length is in 32-bit units: 4 * max_chars bytes, enough for max_chars characters.
    reply = window.get_property(atoms.property, X.AnyPropertyType, 0, max_chars)
    window.delete_property(atoms.property)
    display.flush()
    if reply is None or reply.format != 8:
        return ReadFailure.REFUSED
    if reply.property_type == atoms.incr:
        return ReadFailure.INCR
    # At most 4 bytes a character: a character cut short by the length lies beyond max_chars.
    return bytes(reply.value).decode("utf-8", "replace")[:max_chars]


class SelectionSensor:
    name = "selection"

    def __init__(
        self,
        display: str,
        emit: Emit,
        *,
        max_chars: int,
        debounce_s: float,
        timeout_s: float,
        poll_s: float,
        privacy: PrivacyRules | None = None,
    ) -> None:
        self._display_name = display
        self._emit = emit
        self._max_chars = max_chars
        self._debounce_s = debounce_s
        self._timeout_s = timeout_s
        self._poll_s = poll_s
        self._privacy = privacy or PrivacyRules()
        # Digest of the last text sent, per selection (True: PRIMARY); kept across restarts.
        self._last: dict[bool, bytes] = {}
        self._pending: dict[int, _Pending] = {}
        self._window: Window | None = None
        # Atoms are interned per connection, in _watch.
        self._primary = self._clipboard = self._utf8 = self._incr = self._property = self._active = 0
        self._owner_notify: tuple[int, int] = (0, 0)
        # Reads that gave no text: owners that refused, did not answer in time, or wanted INCR.
        self.failed_reads = 0
        # Selection changes not read because a private window had focus.
        self.withheld = 0
        # Set while the sensor listens for owner changes (changes before that are never seen).
        self.ready = threading.Event()

    def run(self, stop: threading.Event) -> None:
        try:
            display = Display(self._display_name)
        except (xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
            raise SensorError(f"cannot open X display {self._display_name!r}: {exc}") from exc
        try:
            if not display.has_extension("XFIXES"):
                logger.warning("selection sensor off: the X server lacks the XFIXES extension")
                return
            # XFixes requests are refused until the client has announced its version.
            display.xfixes_query_version()
            self._watch(display, stop)
        except (xerror.ConnectionClosedError, OSError) as exc:
            raise SensorError(f"lost X display {self._display_name!r}: {exc}") from exc
        finally:
            self.ready.clear()
            self._pending.clear()
            self._window = None
            display.close()

    def _watch(self, display: Display, stop: threading.Event) -> None:
        # Errors of requests without replies (a focused window that vanished) arrive asynchronously.
        display.set_error_handler(lambda err, request: logger.debug("X error ignored: %s", err))
        self._primary = display.get_atom("PRIMARY")
        self._clipboard = display.get_atom("CLIPBOARD")
        self._utf8 = display.get_atom("UTF8_STRING")
        self._incr = display.get_atom("INCR")
        self._property = display.get_atom(PROPERTY)
        self._active = display.get_atom("_NET_ACTIVE_WINDOW")
        # (event code, sub-code): python-xlib clones the extension's event classes per connection.
        self._owner_notify = display.extension_event.SetSelectionOwnerNotify
        self._replace_window(display)
        display.sync()  # the server has taken the subscription before anyone is told it is ready
        self.ready.set()
        while not stop.is_set():
            self._read_due(display)
            wait = self._poll_s
            if self._pending:
                wait = min(wait, max(0.0, min(p.due for p in self._pending.values()) - time.monotonic()))
            # Replies to our own requests may have queued events already; select() would not see those.
            if not display.pending_events():
                select.select([display], [], [], wait)
            while display.pending_events():
                self._owner_changed(display, display.next_event())

    def _replace_window(self, display: Display) -> None:
        """Listen on a fresh window, so that owners still writing to the old one write nowhere."""
        window = display.screen().root.create_window(-1, -1, 1, 1, 0, X.CopyFromParent)
        mask = xfixes.XFixesSetSelectionOwnerNotifyMask
        for selection in (self._primary, self._clipboard):
            display.xfixes_select_selection_input(window, selection, mask)
        if self._window is not None:
            self._window.destroy()
        self._window = window
        display.flush()

    def _owner_changed(self, display: Display, event: Any) -> None:
        if (event.type, getattr(event, "sub_code", None)) != self._owner_notify:
            return
        owner = _resource_id(event.owner)
        if owner == X.NONE or self._owned_by_us(display, owner):
            self._pending.pop(event.selection, None)
            return
        _, private = self._focus(display)
        previous = self._pending.get(event.selection)
        delay = self._debounce_s if event.selection == self._primary else 0.0
        self._pending[event.selection] = _Pending(
            time.monotonic() + delay, private or (previous is not None and previous.private)
        )

    def _read_due(self, display: Display) -> None:
        for selection, pending in list(self._pending.items()):
            now = time.monotonic()
            if pending.due > now:
                continue
            if selection == self._primary and self._selecting(display):
                pending.due = now + max(self._debounce_s, DRAG_RECHECK_S)
                continue
            del self._pending[selection]
            self._sense(display, selection, pending.private)

    def _sense(self, display: Display, selection: int, was_private: bool) -> None:
        app_id, private = self._focus(display)
        if private or was_private:
            self.withheld += 1
            return
        text = self._read(display, selection)
        if text is None or not text.strip():
            return
        primary = selection == self._primary
        digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
        if self._last.get(primary) == digest:
            return
        self._last[primary] = digest
        event = new_event()
        event.clipboard.app_id = app_id
        event.clipboard.text = text
        event.clipboard.primary = primary
        self._emit(event)

    def _read(self, display: Display, selection: int) -> str | None:
        """The selection's text, or None when its owner refuses, fails or misses the deadline."""
        window = self._window
        assert window is not None
        atoms = TextAtoms(self._utf8, self._incr, self._property)
        result = request_text(
            display,
            window,
            selection,
            atoms,
            timeout_s=self._timeout_s,
            max_chars=self._max_chars,
            on_event=lambda event: self._owner_changed(display, event),
        )
        if isinstance(result, str):
            return result
        self.failed_reads += 1
        if result is ReadFailure.TIMEOUT:
            logger.info("selection owner did not answer within %.1fs; skipped", self._timeout_s)
        elif result is ReadFailure.INCR:
            logger.info("selection too large for one transfer (INCR); skipped")
        else:
            logger.debug("selection owner cannot give UTF8_STRING")
        if result in (ReadFailure.TIMEOUT, ReadFailure.INCR):
            self._replace_window(display)
        return None

    def _focus(self, display: Display) -> tuple[str, bool]:
        """The focused window's app id, and whether that window is private."""
        root = display.screen().root
        prop = root.get_full_property(self._active, X.AnyPropertyType)
        window_id = int(prop.value[0]) if prop is not None and len(prop.value) else 0
        if not window_id:
            return "", False
        info = describe_window(display, display.create_resource_object("window", window_id))
        if info is None:
            return "", True  # vanished while being read: whose it was is unknown, so withhold
        return info.app_id[:MAX_NAME_CHARS], self._privacy.is_private(info.app_id, info.wm_class, info.title)

    def _selecting(self, display: Display) -> bool:
        """Whether a pointer button or Shift is held: the user may still be changing the selection."""
        return bool(display.screen().root.query_pointer().mask & _SELECTING_MASK)

    def _owned_by_us(self, display: Display, owner: int) -> bool:
        info = display.display.info
        return bool(owner & ~info.resource_id_mask == info.resource_id_base)


def _resource_id(value: Any) -> int:
    """The id of a window field of an event: python-xlib gives a Window object, or an int for None."""
    return int(getattr(value, "id", value))
