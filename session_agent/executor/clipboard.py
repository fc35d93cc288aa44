"""The clipboard for the executor: SetClipboard owns the X CLIPBOARD selection, GetClipboard reads it.

X has no clipboard storage: the app that owns CLIPBOARD hands its text to whoever asks (ICCCM). So
``ClipboardOwner`` keeps an X connection and a window of its own on a thread that answers requests
for the text (TARGETS, UTF8_STRING, STRING, TEXT, text/plain;charset=utf-8) until another app takes
the clipboard (SelectionClear) or the agent stops; with the agent stopped, the text is gone unless a
clipboard manager copied it. Reading asks the current owner through ``request_text``, the selection
sensor's reader, with the same deadline and size rules.
"""

from __future__ import annotations

import logging
import select
import threading
import time

from Xlib import X, Xatom
from Xlib import error as xerror
from Xlib.display import Display
from Xlib.protocol import event as xevent

from session_agent.errors import ActionFailedError
from session_agent.executor.protocol import ActionContext
from session_agent.sensors.selection import PROPERTY, ReadFailure, TextAtoms, request_text

logger = logging.getLogger(__name__)

# One ChangeProperty request must stay below the core protocol's 256 KiB request limit.
MAX_CLIPBOARD_BYTES = 200_000
OWN_TIMEOUT_S = 2.0
_POLL_S = 0.5


class ClipboardOwner:
    """Owns CLIPBOARD with a text, on a thread of its own; one per executor."""

    def __init__(self, display_name: str) -> None:
        self._display_name = display_name
        self._lock = threading.Lock()
        self._text: bytes | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._owned = threading.Event()

    def owned_text(self) -> str | None:
        """The text while this agent owns the clipboard, else None."""
        with self._lock:
            owned = self._text if self._owned.is_set() else None
        return owned.decode() if owned is not None else None

    def set_text(self, text: str, context: ActionContext) -> None:
        data = text.encode()
        if len(data) > MAX_CLIPBOARD_BYTES:
            raise ActionFailedError(f"clipboard text over {MAX_CLIPBOARD_BYTES} bytes")
        with self._lock:
            self._text = data
            running = self._thread is not None and self._thread.is_alive()
            if not running:
                self._owned.clear()
                self._stop.clear()
                self._thread = threading.Thread(target=self._serve, name="clipboard-owner", daemon=True)
                self._thread.start()
        # A running owner keeps ownership and serves the new text from now on.
        if not self._owned.wait(min(OWN_TIMEOUT_S, max(0.0, context.remaining()))):
            raise ActionFailedError("could not take the X clipboard")

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(2 * _POLL_S)

    def _serve(self) -> None:
        try:
            display = Display(self._display_name)
        except (xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
            logger.warning("clipboard: cannot open X display %r: %s", self._display_name, exc)
            return
        try:
            self._own(display)
        except (xerror.ConnectionClosedError, OSError) as exc:
            logger.warning("clipboard: lost the X display: %s", exc)
        except Exception:  # a thread of its own: nothing above it would see the error
            logger.exception("clipboard: the owner failed; the clipboard is given up")
        finally:
            self._owned.clear()
            display.close()

    def _own(self, display: Display) -> None:
        clipboard = display.get_atom("CLIPBOARD")
        window = display.screen().root.create_window(-1, -1, 1, 1, 0, X.CopyFromParent)
        window.set_selection_owner(clipboard, X.CurrentTime)
        display.sync()
        if _owner_id(display, clipboard) != window.id:
            return
        self._owned.set()
        atoms = _Atoms(display)
        while not self._stop.is_set():
            if not display.pending_events():
                select.select([display], [], [], _POLL_S)
            while display.pending_events():
                event = display.next_event()
                if event.type == X.SelectionClear and event.atom == clipboard:
                    logger.debug("clipboard: another app took the clipboard")
                    return
                if event.type == X.SelectionRequest and event.selection == clipboard:
                    with self._lock:
                        data = self._text or b""
                    _answer(display, event, data, atoms)


def _owner_id(display: Display, selection: int) -> int:
    owner = display.get_selection_owner(selection)
    return int(getattr(owner, "id", owner))


class _Atoms:
    def __init__(self, display: Display) -> None:
        self.targets = display.get_atom("TARGETS")
        self.utf8 = display.get_atom("UTF8_STRING")
        self.text = display.get_atom("TEXT")
        self.plain = display.get_atom("text/plain;charset=utf-8")
        self.offered = [self.targets, self.utf8, Xatom.STRING, self.text, self.plain]


def _answer(display: Display, request: xevent.SelectionRequest, data: bytes, atoms: _Atoms) -> None:
    """Write the text in the requested form to the requestor's property and tell it (ICCCM 2.2)."""
    # Obsolete clients give no property: the target's name is then the property.
    prop = request.property if request.property != X.NONE else request.target
    requestor = request.requestor
    try:
        if request.target == atoms.targets:
            requestor.change_property(prop, Xatom.ATOM, 32, atoms.offered)
        elif request.target in (atoms.utf8, atoms.text, atoms.plain):
            requestor.change_property(
                prop, atoms.utf8 if request.target == atoms.text else request.target, 8, data
            )
        elif request.target == Xatom.STRING:
            latin1 = data.decode().encode("latin-1", "replace")
            requestor.change_property(prop, Xatom.STRING, 8, latin1)
        else:
            prop = X.NONE  # a target not offered (MULTIPLE, images): refused
        notify = xevent.SelectionNotify(
            time=request.time,
            requestor=requestor,
            selection=request.selection,
            target=request.target,
            property=prop,
        )
        requestor.send_event(notify)
        display.flush()
    except (xerror.BadWindow, xerror.BadAtom, xerror.BadAlloc):
        logger.debug("clipboard: a requestor went away before it got the text")


def read_clipboard(display_name: str, max_chars: int, context: ActionContext) -> str:
    """The CLIPBOARD text of whichever app owns it ("" when none does)."""
    try:
        display = Display(display_name)
    except (xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
        raise ActionFailedError(f"cannot open X display {display_name!r}: {exc}") from exc
    try:
        clipboard = display.get_atom("CLIPBOARD")
        if _owner_id(display, clipboard) == X.NONE:
            return ""
        window = display.screen().root.create_window(-1, -1, 1, 1, 0, X.CopyFromParent)
        atoms = TextAtoms(
            display.get_atom("UTF8_STRING"), display.get_atom("INCR"), display.get_atom(PROPERTY)
        )
        started = time.monotonic()
        result = request_text(
            display,
            window,
            clipboard,
            atoms,
            timeout_s=min(2.0, max(0.0, context.remaining())),
            max_chars=max_chars,
            on_event=lambda event: None,
        )
        if isinstance(result, ReadFailure):
            raise ActionFailedError(f"the clipboard's owner did not give its text: {result.value}")
        logger.debug("clipboard read in %.1f ms", (time.monotonic() - started) * 1000)
        return result
    finally:
        display.close()
