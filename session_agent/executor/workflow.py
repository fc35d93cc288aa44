"""The workflow actions: one bounded operation on the real desktop per WorkflowStep, and Notice.

Each handler opens what it needs for the one action (an X connection, an AT-SPI connection) on the
action's thread and closes it after. Rules every handler keeps:

* **Password fields**: nothing is typed into one unless ``TypeText.use_secret`` is set and the command
  carries a secret, and the secret is typed into nothing else; a password field is never read.
  PressKeys sends chords and named keys only (Return, ctrl+s), never text: text goes through TypeText,
  whose checks it would otherwise bypass.
* **Private windows** (``session_agent.privacy``): not read (ReadElement, GetClipboard while one has
  focus), not captured (TakeFrame while one has focus; others are blacked out), and their titles are
  not reported.
* **Keys go only where they were meant to**: the target window must be the active one before every
  key (``X11Desktop``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import mss
import psutil
from jeepney import DBusAddress, DBusErrorResponse, new_method_call
from jeepney.io.blocking import open_dbus_connection
from mss.exception import ScreenShotError
from PIL import Image
from Xlib import XK, X
from Xlib import error as xerror
from Xlib.display import Display

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent import config as names
from session_agent.config import AgentSettings
from session_agent.errors import ActionFailedError, ActionRefusedError, SensorError
from session_agent.executor.checks import TextQuery, file_exists, find_text
from session_agent.executor.clipboard import ClipboardOwner, read_clipboard
from session_agent.executor.elements import (
    EDITABLE_TEXT,
    STATE_EDITABLE,
    STATE_FOCUSED,
    Accessibility,
    Element,
)
from session_agent.executor.identity import field_value
from session_agent.executor.protocol import NOTICE, ActionContext, Handler, Outcome, cut
from session_agent.executor.x11 import X11Desktop, parse_chord, window_matches
from session_agent.privacy import PrivacyRules
from session_agent.sensors.base import new_event
from session_agent.sensors.frames import MIME_TYPE, capture, dhash, encode
from session_agent.sensors.window import WindowInfo
from session_agent.spool import Spool

logger = logging.getLogger(__name__)

MAX_ARGS = 64
MAX_ARG_CHARS = 4096
MAX_TYPED_CHARS = 65_536
FOCUS_WAIT_S = 1.0
# How long a drop-down gets to open, and to show the chosen option, after a click.
OPTION_WAIT_S = 2.0
_MODIFIER_KEYSYMS = frozenset(
    {XK.XK_Control_L, XK.XK_Control_R, XK.XK_Alt_L, XK.XK_Alt_R, XK.XK_Super_L, XK.XK_Super_R, XK.XK_Meta_L}
)


class WorkflowActions:
    """Handlers of the workflow actions of one agent (and its clipboard owner, closed with it)."""

    def __init__(
        self, settings: AgentSettings, spool: Spool, privacy: PrivacyRules, *, session_bus: str | None = None
    ) -> None:
        self._settings = settings
        self._display = settings.display
        self._spool = spool
        self._privacy = privacy
        self._bus = session_bus if session_bus is not None else os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
        self._clipboard = ClipboardOwner(settings.display)

    def handlers(self) -> dict[str, Handler]:
        return {
            NOTICE: self.notice,
            names.ACTION_FOCUS_WINDOW: self.focus_window,
            names.ACTION_LAUNCH_APP: self.launch_app,
            names.ACTION_CLICK_ELEMENT: self.click_element,
            names.ACTION_TYPE_TEXT: self.type_text,
            names.ACTION_PRESS_KEYS: self.press_keys,
            names.ACTION_SET_CLIPBOARD: self.set_clipboard,
            names.ACTION_GET_CLIPBOARD: self.get_clipboard,
            names.ACTION_READ_ELEMENT: self.read_element,
            names.ACTION_WAIT_FOR: self.wait_for,
            names.ACTION_TAKE_FRAME: self.take_frame,
            names.ACTION_SELECT_OPTION: self.select_option,
            names.ACTION_FILE_EXISTS: self.file_exists,
            names.ACTION_FIND_TEXT: self.find_text,
        }

    def close(self) -> None:
        self._clipboard.close()

    def notice(self, command: pb.Command, context: ActionContext) -> Outcome:
        """Show the notice as a desktop notification when a notification service runs; always log it."""
        notice = command.notice
        logger.warning("notice from the cloud: %s: %s", notice.title[:200], notice.body[:2000])
        shown = _notify_desktop(self._bus, notice.title[:200], notice.body[:2000], context)
        return Outcome({"shown": "desktop_notification" if shown else "log"})

    def focus_window(self, command: pb.Command, context: ActionContext) -> Outcome:
        with X11Desktop(self._display) as x11:
            window = x11.find(command.workflow_step.focus_window.window)
            x11.activate(window, context)
            return Outcome(self._window_observed(window))

    def launch_app(self, command: pb.Command, context: ActionContext) -> Outcome:
        step = command.workflow_step.launch_app
        name = step.executable
        if not name or "/" in name:
            raise ActionRefusedError("executable must be a program name looked up on PATH")
        allowed = self._settings.launch_executables
        if allowed and name not in allowed:
            raise ActionRefusedError(f"executable {name!r} is not in launch_executables")
        if len(step.args) > MAX_ARGS or any(len(arg) > MAX_ARG_CHARS for arg in step.args):
            raise ActionRefusedError(f"at most {MAX_ARGS} arguments of at most {MAX_ARG_CHARS} characters")
        path = shutil.which(name)
        if path is None:
            raise ActionFailedError(f"{name!r} is not on the agent's PATH")
        with X11Desktop(self._display) as x11:
            before = {window.window_id for window in x11.windows()}
            process = subprocess.Popen(
                [path, *step.args],
                env=_app_environment(self._display),
                cwd=Path.home(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
            observed = {"pid": str(process.pid), "executable": path}
            if not step.wait_window_ms:
                return Outcome(observed)
            deadline = time.monotonic() + min(step.wait_window_ms / 1000, max(0.0, context.remaining()))
            while True:
                window = _new_window(x11.windows(), before, process.pid)
                if window is not None:
                    return Outcome({**observed, **self._window_observed(window)})
                if process.poll() not in (None, 0):
                    raise ActionFailedError(
                        f"{name} exited with status {process.returncode}", observed=observed
                    )
                if time.monotonic() >= deadline:
                    raise ActionFailedError(
                        f"no window of {name} within {step.wait_window_ms} ms", observed=observed
                    )
                context.sleep(0.05)

    def click_element(self, command: pb.Command, context: ActionContext) -> Outcome:
        ref = command.workflow_step.click_element.element
        with X11Desktop(self._display) as x11, Accessibility(self._bus) as a11y:
            element = a11y.find(x11, ref, context)
            window = element.window
            action = a11y.do_action(element, context)
            if action is not None:
                return Outcome({**element.observed(), "method": f"action:{action}"})
            x, y = a11y.center(element, context)
            x11.activate(window, context)
            x11.click(x, y, window.window_id, context)
            return Outcome({**element.observed(), "method": "pointer"})

    def type_text(self, command: pb.Command, context: ActionContext) -> Outcome:
        step = command.workflow_step.type_text
        if step.use_secret and not context.secret:
            raise ActionRefusedError("use_secret is set but the command carries no secret")
        text = context.secret if step.use_secret else step.text
        if len(text) > MAX_TYPED_CHARS:
            raise ActionRefusedError(f"text over {MAX_TYPED_CHARS} characters")
        if not step.HasField("element"):
            return self._type_at_focus(step, text, context)
        with X11Desktop(self._display) as x11, Accessibility(self._bus) as a11y:
            element = a11y.find(x11, step.element, context)
            window = element.window
            protected = a11y.is_protected(element, context)
            if protected and not step.use_secret:
                raise ActionRefusedError("a password field: only a secret the user gave is typed into it")
            if step.use_secret and not protected:
                raise ActionRefusedError("the secret is typed only into a password field")
            observed = element.observed()
            if not step.use_secret:
                observed["chars"] = str(len(text))
            interfaces = a11y.interfaces(element, context)
            if EDITABLE_TEXT in interfaces:
                done = (
                    a11y.set_text(element, text, context)
                    if step.replace
                    else a11y.insert_text(element, text, context)
                )
                if done:
                    return Outcome({**observed, "method": "editable_text"})
            if not a11y.states(element, context) >> STATE_EDITABLE & 1:
                raise ActionFailedError("the element is not editable")
            x11.activate(window, context)
            self._focus_element(a11y, element, context)
            if step.replace:
                x11.press_chord([XK.XK_Control_L, XK.XK_a], window.window_id, context)
            x11.type_text(text, window.window_id, context)
            return Outcome({**observed, "method": "keyboard"})

    def _type_at_focus(self, step: pb.TypeText, text: str, context: ActionContext) -> Outcome:
        """The thin client's type box: the user's own text, into whatever has the focus, as their
        keyboard would type it (Chinese too: the keyboard map is borrowed per stretch of characters,
        which the VNC server's keysym mapping cannot do for more than a handful). No element, so no
        secret: a secret goes only into a password field found by its element."""
        if step.use_secret:
            raise ActionRefusedError("a secret is typed only into a named password field")
        if step.replace:
            raise ActionRefusedError("replace needs an element")
        with X11Desktop(self._display) as x11:
            window = x11.active_window()
            if window is None:
                raise ActionFailedError("no window has the focus")
            x11.type_text(text, window.window_id, context)
        return Outcome({"chars": str(len(text)), "method": "keyboard"})

    def press_keys(self, command: pb.Command, context: ActionContext) -> Outcome:
        keys = command.workflow_step.press_keys.keys
        keysyms = parse_chord(keys)
        if not _is_command_chord(keysyms):
            raise ActionRefusedError("PressKeys sends key chords (ctrl+s, Return), not text: use TypeText")
        with X11Desktop(self._display) as x11:
            window = x11.active_window()
            if window is None:
                raise ActionFailedError("no window has the focus")
            x11.press_chord(keysyms, window.window_id, context)
            return Outcome({"keys": keys, **self._window_observed(window)})

    def set_clipboard(self, command: pb.Command, context: ActionContext) -> Outcome:
        text = command.workflow_step.set_clipboard.text
        self._clipboard.set_text(text, context)
        return Outcome({"chars": str(len(text))})

    def get_clipboard(self, command: pb.Command, context: ActionContext) -> Outcome:
        owned = self._clipboard.owned_text()
        if owned is None:
            with X11Desktop(self._display) as x11:
                active = x11.active_window()
            if active is not None and self._is_private(active):
                raise ActionRefusedError("a private window has the focus: the clipboard is not read")
            owned = read_clipboard(self._display, 4 * 16_384, context)
        return Outcome(_value_observed(owned))

    def read_element(self, command: pb.Command, context: ActionContext) -> Outcome:
        ref = command.workflow_step.read_element.element
        with X11Desktop(self._display) as x11, Accessibility(self._bus) as a11y:
            element = a11y.find(x11, ref, context)
            if self._is_private(element.window):
                raise ActionRefusedError("the window is private: it is not read")
            if a11y.is_protected(element, context):
                raise ActionRefusedError("a password field is never read")
            # A drop-down holds its selected option (as SelectOption reads it back), not its text.
            return Outcome({**element.observed(), **_value_observed(field_value(a11y, element, context))})

    def wait_for(self, command: pb.Command, context: ActionContext) -> Outcome:
        step = command.workflow_step.wait_for
        condition = step.WhichOneof("condition")
        if condition is None:
            raise ActionFailedError("WaitFor needs window_focused, element_exists or text_in_window")
        query = TextQuery(step.text_in_window) if condition == "text_in_window" else None
        timeout_s = min(step.timeout_ms / 1000, self._settings.wait_max_s)
        started = time.monotonic()
        with X11Desktop(self._display) as x11:
            a11y = Accessibility(self._bus) if condition != "window_focused" else None
            try:
                while True:
                    found = self._condition_met(x11, a11y, step, query, context)
                    waited = {"waited_ms": str(round((time.monotonic() - started) * 1000))}
                    if found is not None:
                        return Outcome({**found, **waited, "met": "true"})
                    if time.monotonic() - started >= timeout_s:
                        raise ActionFailedError(
                            f"{condition} not met within {step.timeout_ms} ms",
                            observed={**waited, "met": "false"},
                        )
                    context.sleep(0.1 if a11y is None else 0.3)
            finally:
                if a11y is not None:
                    a11y.client.close()

    def take_frame(self, command: pb.Command, context: ActionContext) -> Outcome:
        """Grab the screen now, as the frame sensor would (private windows withheld or blacked out), or only
        the rectangle of the window it names, and commit it to the spool as a ScreenFrame event; its seq
        goes into the result."""
        settings = self._settings
        target = command.workflow_step.take_frame
        try:
            grabber = mss.MSS(display=self._display, backend="xgetimage")
            windows = Display(self._display)
        except (ScreenShotError, xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
            raise ActionFailedError(f"cannot grab the screen: {exc}") from exc
        try:
            image, _ = capture(grabber, grabber.monitors[0], windows, self._privacy, self._display)
            root = windows.screen().root
            active = root.get_full_property(windows.get_atom("_NET_ACTIVE_WINDOW"), X.AnyPropertyType)
            window_id = int(active.value[0]) if active is not None and len(active.value) else 0
        except SensorError as exc:
            raise ActionFailedError(str(exc)) from exc
        finally:
            windows.close()
            grabber.close()
        if image is None:
            raise ActionRefusedError("a private window has the focus: no frame is taken")
        if target.HasField("window"):
            image, window_id = self._window_part(image, target.window)
        encoded, (width, height) = encode(image, settings.frame_max_width, settings.frame_quality)
        if len(encoded) > settings.batch_max_bytes:
            raise ActionFailedError(f"the frame has {len(encoded)} bytes, over batch_max_bytes")
        event = new_event()
        event.frame.CopyFrom(
            pb.ScreenFrame(
                image=encoded,
                mime_type=MIME_TYPE,
                width=width,
                height=height,
                dhash=dhash(image),
                window_id=window_id,
            )
        )
        seqs = self._spool.append([event])
        if not seqs:
            raise ActionFailedError("the spool is full: the frame was dropped")
        return Outcome(
            {"width": str(width), "height": str(height), "bytes": str(len(encoded))}, frame_seq=seqs[0]
        )

    def _window_part(self, screen: Image.Image, ref: pb.WindowRef) -> tuple[Image.Image, int]:
        """The part of ``screen`` that ``ref``'s window covers, and the window's id."""
        with X11Desktop(self._display) as x11:
            window = x11.find(ref)
            if self._is_private(window):
                raise ActionRefusedError("the window is private: it is not captured")
            left, top, width, height = x11.bounds(window.window_id)
        box = (max(0, left), max(0, top), min(screen.width, left + width), min(screen.height, top + height))
        if box[0] >= box[2] or box[1] >= box[3]:
            raise ActionFailedError("the window is not on the screen")
        return screen.crop(box), window.window_id

    def select_option(self, command: pb.Command, context: ActionContext) -> Outcome:
        """Choose an entry of a drop-down by its text: the entry's own action (or the Selection
        interface); else a pointer click on the drop-down, then on the entry once it shows. Done when
        the drop-down reads back the entry."""
        step = command.workflow_step.select_option
        if not step.option:
            raise ActionRefusedError("SelectOption needs the option's text")
        with X11Desktop(self._display) as x11, Accessibility(self._bus) as a11y:
            element = a11y.find(x11, step.element, context)
            observed = element.observed()
            method = "action"
            if a11y.select_option(element, step.option, context) is None:
                method = "pointer"
                x, y = a11y.center(element, context)
                x11.activate(element.window, context)
                x11.click(x, y, element.window.window_id, context)
                deadline = time.monotonic() + OPTION_WAIT_S
                while (entry := a11y.option_bounds(element, step.option, context)) is None:
                    if time.monotonic() >= deadline:
                        raise ActionFailedError(
                            f"the drop-down has no option {step.option!r}", observed=observed
                        )
                    context.sleep(0.1)
                x11.click(*entry, element.window.window_id, context)
            deadline = time.monotonic() + OPTION_WAIT_S
            while (value := field_value(a11y, element, context)).strip() != step.option.strip():
                if time.monotonic() >= deadline:
                    raise ActionFailedError(
                        f"the drop-down shows {value[:200]!r}, not {step.option!r}",
                        observed={**observed, "value": value[:200]},
                    )
                context.sleep(0.1)
            return Outcome({**observed, "value": value, "method": method})

    def file_exists(self, command: pb.Command, context: ActionContext) -> Outcome:
        roots = [Path.home(), self._settings.temp_dir]
        return Outcome(file_exists(command.workflow_step.file_exists.path, roots))

    def find_text(self, command: pb.Command, context: ActionContext) -> Outcome:
        step = command.workflow_step.find_text
        query = TextQuery(step)
        with X11Desktop(self._display) as x11, Accessibility(self._bus) as a11y:
            window = x11.find(step.window)
            if self._is_private(window):
                raise ActionRefusedError("the window is private: it is not read")
            found = find_text(a11y, window, query, context, walk_s=context.remaining())
            return Outcome({**(found or {"found": "false"}), **self._window_observed(window)})

    def _condition_met(
        self,
        x11: X11Desktop,
        a11y: Accessibility | None,
        step: pb.WaitFor,
        query: TextQuery | None,
        context: ActionContext,
    ) -> dict[str, str] | None:
        if a11y is None:
            active = x11.active_window()
            if active is not None and window_matches(active, step.window_focused):
                return self._window_observed(active)
            return None
        if query is not None:
            windows = [w for w in x11.windows() if window_matches(w, step.text_in_window.window)]
            for window in reversed(windows):
                if self._is_private(window):
                    continue
                try:
                    found = find_text(a11y, window, query, context)
                except ActionFailedError:
                    continue  # read in full on a later poll, or the wait times out
                if found is not None:
                    return {**found, **self._window_observed(window)}
            return None
        ref = step.element_exists
        windows = [window for window in x11.windows() if window_matches(window, ref.window)]
        for window in reversed(windows):
            element = a11y.lookup(window, ref, context, x11=x11)
            if element is not None:
                return element.observed()
        return None

    def _focus_element(self, a11y: Accessibility, element: Element, context: ActionContext) -> None:
        a11y.grab_focus(element, context)
        deadline = time.monotonic() + FOCUS_WAIT_S
        while not a11y.states(element, context) >> STATE_FOCUSED & 1:
            if time.monotonic() >= deadline:
                raise ActionFailedError("the element did not take the keyboard focus")
            context.sleep(0.02)

    def _is_private(self, window: WindowInfo) -> bool:
        return self._privacy.is_private(window.app_id, window.wm_class, window.title)

    def _window_observed(self, window: WindowInfo) -> dict[str, str]:
        observed = {"window_id": str(window.window_id), "app_id": window.app_id}
        if not self._is_private(window):
            observed["title"] = window.title
        return observed


def _value_observed(text: str) -> dict[str, str]:
    value, truncated = cut(text)
    observed = {"value": value, "chars": str(len(text))}
    if truncated:
        observed["truncated"] = "true"
    return observed


def _is_command_chord(keysyms: list[int]) -> bool:
    """A chord with Control/Alt/Super/Meta, or a single key that types no character (Return, F5, arrows)."""
    if any(keysym in _MODIFIER_KEYSYMS for keysym in keysyms):
        return True
    # Keysyms 0xff00-0xffff are function and editing keys (Return, Tab, BackSpace, F1, Left, Shift_L).
    return all(0xFF00 <= keysym <= 0xFFFF for keysym in keysyms)


def _new_window(windows: list[WindowInfo], before: set[int], pid: int) -> WindowInfo | None:
    """A window that appeared since launch: preferably of the launched process or a child of it (apps
    that hand over to a running instance, like mousepad or Chromium, show one of that instance)."""
    new = [window for window in windows if window.window_id not in before]
    for window in new:
        try:
            if window.pid == pid or pid in (parent.pid for parent in psutil.Process(window.pid).parents()):
                return window
        except psutil.Error:
            continue
    return new[-1] if new else None


def _app_environment(display: str) -> dict[str, str]:
    """The agent's environment for an app it launches, without the agent's own settings (its token)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SHADOWDESK_")}
    env["DISPLAY"] = display
    return env


def _notify_desktop(session_bus: str, title: str, body: str, context: ActionContext) -> bool:
    """Show a desktop notification (org.freedesktop.Notifications); False when none can be shown."""
    if not session_bus:
        return False
    address = DBusAddress(
        "/org/freedesktop/Notifications",
        bus_name="org.freedesktop.Notifications",
        interface="org.freedesktop.Notifications",
    )
    message = new_method_call(
        address, "Notify", "susssasa{sv}i", ("Shadowdesk", 0, "", title or "Shadowdesk", body, [], {}, -1)
    )
    try:
        with open_dbus_connection(bus=session_bus) as connection:
            connection.send_and_get_reply(message, timeout=max(0.001, min(1.0, context.remaining())))
    except (OSError, DBusErrorResponse, TimeoutError, ValueError) as exc:
        logger.debug("no desktop notification: %s", exc)
        return False
    return True
