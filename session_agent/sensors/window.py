"""Window sensor: the focused window (id, title, app, pid) and app lifecycle, from X11 properties.

Focus follows ``_NET_ACTIVE_WINDOW`` on the root window; titles follow ``_NET_WM_NAME`` (else
``WM_NAME``) on the focused window; apps follow the pids (``_NET_WM_PID``) of ``_NET_CLIENT_LIST``.
All of it is driven by PropertyNotify events, re-checked every ``poll_s`` in case an event was missed
between reading a property and subscribing to it. It reads window properties only: never keystrokes,
window contents or input fields. Apps already running when the sensor starts are reported STARTED;
an app started later is reported with its start time (its process's start to its first listed window).

A private window (``session_agent.privacy``) is reported with ``private`` set and without its title
and WM_CLASS; ``private_view`` tells the frame sensor which parts of the screen are private.
"""

from __future__ import annotations

import logging
import select
import threading
from dataclasses import dataclass

import psutil
from Xlib import X
from Xlib import error as xerror
from Xlib.display import Display
from Xlib.xobject.drawable import Window

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.errors import SensorError
from session_agent.privacy import PrivacyRules
from session_agent.sensors.base import Emit, FocusState, new_event
from session_agent.sensors.health import DesktopHealth, app_version, since_boot_s, started_s

logger = logging.getLogger(__name__)

# Cut before the cloud's limits (titles 2048, names 256 characters by default), which refuse a batch.
MAX_TITLE_CHARS = 1024
MAX_NAME_CHARS = 255


@dataclass(frozen=True)
class WindowInfo:
    window_id: int
    title: str
    wm_class: str
    app_id: str
    pid: int
    private: bool = False


@dataclass(frozen=True)
class PrivateView:
    """What of the screen is private right now."""

    focused: bool
    # (left, top, right, bottom) in root coordinates of every viewable private window.
    boxes: frozenset[tuple[int, int, int, int]]


@dataclass(frozen=True)
class App:
    app_id: str
    executable: str
    version: str = ""
    startup_ms: int = 0


class WindowSensor:
    name = "window"

    def __init__(
        self,
        display: str,
        emit: Emit,
        *,
        poll_s: float,
        focus: FocusState,
        emit_focus: bool,
        emit_apps: bool,
        privacy: PrivacyRules | None = None,
        health: DesktopHealth | None = None,
    ) -> None:
        self._display_name = display
        self._privacy = privacy or PrivacyRules()
        self._health = health or DesktopHealth()
        self._started = since_boot_s()
        self._emit = emit
        self._poll_s = poll_s
        self._focus = focus
        self._emit_focus = emit_focus
        self._emit_apps = emit_apps
        self._last_focus: WindowInfo | None = None
        self._apps: dict[int, App] = {}

    def run(self, stop: threading.Event) -> None:
        try:
            display = Display(self._display_name)
        except (xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
            raise SensorError(f"cannot open X display {self._display_name!r}: {exc}") from exc
        try:
            self._watch(display, stop)
        except (xerror.ConnectionClosedError, OSError) as exc:
            raise SensorError(f"lost X display {self._display_name!r}: {exc}") from exc
        finally:
            display.close()

    def _watch(self, display: Display, stop: threading.Event) -> None:
        # Errors of requests without replies (a window that vanished) arrive asynchronously: expected.
        display.set_error_handler(lambda err, request: logger.debug("X error ignored: %s", err))
        active_atom = display.get_atom("_NET_ACTIVE_WINDOW")
        clients_atom = display.get_atom("_NET_CLIENT_LIST")
        root = display.screen().root
        root.change_attributes(event_mask=X.PropertyChangeMask)
        watched = 0
        clients_dirty = True
        while not stop.is_set():
            window = self._focused_window(display, root, active_atom)
            if window is not None and window.id != watched:
                # Only the focused window's title matters: stop hearing about the previous one.
                if watched:
                    display.create_resource_object("window", watched).change_attributes(event_mask=0)
                window.change_attributes(event_mask=X.PropertyChangeMask)
                watched = window.id
            self._update_focus(display, window)
            if clients_dirty and self._emit_apps:
                self._update_apps(display, root, clients_atom)
            clients_dirty = False
            # Any property change of the root or the focused window (focus, title) wakes a re-check.
            # Replies to our own requests may have queued events already; select() would not see those.
            if not display.pending_events():
                select.select([display], [], [], self._poll_s)
            while display.pending_events():
                event = display.next_event()
                if event.type == X.PropertyNotify and event.atom == clients_atom:
                    clients_dirty = True

    def _focused_window(self, display: Display, root: Window, active_atom: int) -> Window | None:
        prop = root.get_full_property(active_atom, X.AnyPropertyType)
        window_id = int(prop.value[0]) if prop is not None and len(prop.value) else 0
        return display.create_resource_object("window", window_id) if window_id else None

    def _update_focus(self, display: Display, window: Window | None) -> None:
        info = describe_window(display, window) if window is not None else None
        if info is not None and self._privacy.is_private(info.app_id, info.wm_class, info.title):
            # Withheld here, so a private window's title changes are not even noticed as changes.
            info = WindowInfo(info.window_id, "", "", info.app_id, info.pid, private=True)
        self._focus.window_id = info.window_id if info is not None else 0
        if info is None or info == self._last_focus:
            return
        self._last_focus = info
        if not self._emit_focus:
            return
        event = new_event()
        event.window_focus.window_id = info.window_id
        event.window_focus.app_id = info.app_id
        event.window_focus.wm_class = info.wm_class
        event.window_focus.title = info.title
        event.window_focus.pid = info.pid
        event.window_focus.private = info.private
        self._emit(event)

    def _update_apps(self, display: Display, root: Window, clients_atom: int) -> None:
        prop = root.get_full_property(clients_atom, X.AnyPropertyType)
        running: dict[int, str] = {}
        for window_id in prop.value if prop is not None else ():
            info = describe_window(display, display.create_resource_object("window", int(window_id)))
            if info is not None and info.pid and info.pid not in running:
                running[info.pid] = info.app_id
        for pid, app_id in running.items():
            if pid not in self._apps:
                self._apps[pid] = App(app_id, executable_of(pid), app_version(pid), self._startup_ms(pid))
                self._emit_app(pb.AppLifecycle.KIND_STARTED, pid, self._apps[pid])
        for pid in [pid for pid in self._apps if pid not in running]:
            self._emit_app(pb.AppLifecycle.KIND_EXITED, pid, self._apps.pop(pid))
        self._health.apps = {pid: app.app_id for pid, app in self._apps.items()}

    def _startup_ms(self, pid: int) -> int:
        """From the process's start to now (its first window is listed), for apps started after the agent."""
        started = started_s(pid)
        if started is None or started < self._started:
            return 0
        return int((since_boot_s() - started) * 1000)

    def _emit_app(self, kind: pb.AppLifecycle.Kind.ValueType, pid: int, app: App) -> None:
        event = new_event()
        event.app.kind = kind
        event.app.app_id = app.app_id
        event.app.pid = pid
        event.app.executable = app.executable
        event.app.app_version = app.version
        if kind == pb.AppLifecycle.KIND_STARTED:
            event.app.startup_ms = app.startup_ms
        self._emit(event)


def describe_window(display: Display, window: Window) -> WindowInfo | None:
    """The window's properties, or None when it vanished while being read."""
    try:
        # Any type: tools differ in the type they give _NET_WM_NAME (UTF8_STRING, STRING).
        title_prop = window.get_full_property(display.get_atom("_NET_WM_NAME"), X.AnyPropertyType)
        title = _text(title_prop.value) if title_prop is not None else ""
        if not title:
            legacy = window.get_wm_name()
            title = _text(legacy) if legacy else ""
        wm_class = window.get_wm_class()
        pid_prop = window.get_full_property(display.get_atom("_NET_WM_PID"), X.AnyPropertyType)
    except (xerror.BadWindow, xerror.BadDrawable, xerror.BadValue):
        return None
    pid = int(pid_prop.value[0]) if pid_prop is not None and len(pid_prop.value) else 0
    instance, klass = wm_class if wm_class is not None else ("", "")
    wm_class_text = f"{instance}.{klass}"[:MAX_NAME_CHARS] if klass else ""
    return WindowInfo(window.id, title[:MAX_TITLE_CHARS], wm_class_text, klass.lower()[:MAX_NAME_CHARS], pid)


def private_view(display: Display, rules: PrivacyRules) -> PrivateView:
    """Whether the focused window is private, and where the viewable private windows are."""
    root = display.screen().root
    active = root.get_full_property(display.get_atom("_NET_ACTIVE_WINDOW"), X.AnyPropertyType)
    active_id = int(active.value[0]) if active is not None and len(active.value) else 0
    clients = root.get_full_property(display.get_atom("_NET_CLIENT_LIST"), X.AnyPropertyType)
    client_ids = {int(window_id) for window_id in clients.value} if clients is not None else set()
    focused = False
    boxes: set[tuple[int, int, int, int]] = set()
    # The active window is checked even when the window manager does not list it as a client.
    for window_id in client_ids | ({active_id} if active_id else set()):
        window = display.create_resource_object("window", window_id)
        info = describe_window(display, window)
        if info is None or not rules.is_private(info.app_id, info.wm_class, info.title):
            continue
        focused = focused or window_id == active_id
        try:
            if window.get_attributes().map_state != X.IsViewable:
                continue
            # The window manager's frame around it shows the title too: cover the whole top level.
            while (parent := window.query_tree().parent) and parent.id != root.id:
                window = parent
            geometry = window.get_geometry()
        except (xerror.BadWindow, xerror.BadDrawable, xerror.BadValue):
            continue  # gone: nothing of it is on the screen
        border = 2 * geometry.border_width
        boxes.add(
            (
                geometry.x,
                geometry.y,
                geometry.x + geometry.width + border,
                geometry.y + geometry.height + border,
            )
        )
    return PrivateView(focused, frozenset(boxes))


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def executable_of(pid: int) -> str:
    """The process name (comm), "" when it is gone."""
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""
