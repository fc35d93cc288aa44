"""Desktop health sensor: app hangs (``_NET_WM_PING``), the desktop's responsiveness, logon phases.

Hangs: every top-level window in ``_NET_CLIENT_LIST`` whose ``WM_PROTOCOLS`` lists ``_NET_WM_PING`` is
pinged every ``ping_interval_s`` as the EWMH describes (a ClientMessage to the client that owns the
window; the client answers by sending it back to the root window, where this sensor listens with
SubstructureNotify). A window whose ping stays unanswered for ``hang_after_s`` is ``AppFault`` HUNG;
when it answers again, or its window goes away, RECOVERED with how long it hung. An app that does not
advertise the ping (xterm, many Xt/Motif apps) cannot be judged this way and is never reported hung.

Responsiveness: every ``probe_interval_s`` the sensor changes a property on its own (never mapped)
window and times the X server's PropertyNotify for it: the round trip every input event and repaint
of the desktop also waits behind. An unanswered probe counts up until it is answered.

Logon phases: DESKTOP_UP once the display accepts the connection and a window manager announces
itself (``_NET_SUPPORTING_WM_CHECK``); FIRST_WINDOW once ``_NET_CLIENT_LIST`` lists a window.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from dataclasses import dataclass

from Xlib import X, Xatom
from Xlib import error as xerror
from Xlib.display import Display
from Xlib.protocol import event as xevent
from Xlib.xobject.drawable import Window

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.errors import SensorError
from session_agent.sensors.base import Emit, new_event
from session_agent.sensors.health import DesktopHealth, app_version
from session_agent.sensors.window import describe_window, executable_of

logger = logging.getLogger(__name__)


@dataclass
class _Pinged:
    app_id: str
    pid: int
    executable: str
    waiting_since: float | None = None
    hung: bool = False


class DesktopSensor:
    name = "desktop_health"

    def __init__(
        self,
        display: str,
        emit: Emit,
        *,
        health: DesktopHealth,
        hang_after_s: float,
        ping_interval_s: float,
        probe_interval_s: float,
    ) -> None:
        self._display_name = display
        self._emit = emit
        self._health = health
        self._hang_after_s = hang_after_s
        self._ping_interval_s = ping_interval_s
        self._probe_interval_s = probe_interval_s
        self._pinged: dict[int, _Pinged] = {}
        self._not_pinged: set[int] = set()  # windows that do not advertise the ping
        self._probe_sent: float | None = None
        self._next_probe = 0.0
        self._next_ping = 0.0
        self._desktop_up = False
        self._listed: set[int] | None = None  # the client list, until a PropertyNotify says it changed

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
        display.set_error_handler(lambda err, request: logger.debug("X error ignored: %s", err))
        root = display.screen().root
        # Ping answers are sent to the root with SubstructureNotify|SubstructureRedirect; only the window
        # manager may select the latter, any client the former.
        # PropertyChange: the client list is read again only when it changed.
        root.change_attributes(event_mask=X.SubstructureNotifyMask | X.PropertyChangeMask)
        probe = root.create_window(0, 0, 1, 1, 0, 0, X.InputOnly, X.CopyFromParent)
        probe.change_attributes(event_mask=X.PropertyChangeMask)
        atoms = {
            name: display.get_atom(name)
            for name in (
                "WM_PROTOCOLS",
                "_NET_WM_PING",
                "_NET_CLIENT_LIST",
                "_NET_SUPPORTING_WM_CHECK",
                "_SHADOWDESK_PROBE",
            )
        }
        while not stop.is_set():
            now = time.monotonic()
            if now >= self._next_ping:
                self._next_ping = now + self._ping_interval_s
                self._check_logon(root, atoms)
                self._ping_all(display, root, atoms)
            # Within a tenth of a second of due: the probe shares the ping's wake-up.
            if self._probe_sent is None and now >= self._next_probe - 0.1:
                probe.change_property(atoms["_SHADOWDESK_PROBE"], Xatom.INTEGER, 32, [int(now)])
                display.flush()
                self._probe_sent = now
            elif self._probe_sent is not None:
                # Unanswered: the desktop is at least this slow now.
                self._health.probe_ms = max(self._health.probe_ms, (now - self._probe_sent) * 1000)
            if not display.pending_events():
                wake = min(self._next_ping, self._next_probe if self._probe_sent is None else now + 0.1)
                select.select([display], [], [], max(0.0, wake - time.monotonic()))
            while display.pending_events():
                self._handle(display.next_event(), probe, atoms)

    def _handle(self, event: object, probe: Window, atoms: dict[str, int]) -> None:
        now = time.monotonic()
        if isinstance(event, xevent.PropertyNotify) and event.atom == atoms["_NET_CLIENT_LIST"]:
            self._listed = None
            return
        if isinstance(event, xevent.PropertyNotify) and event.window.id == probe.id:
            if self._probe_sent is not None:
                self._health.probe_ms = (now - self._probe_sent) * 1000
                self._probe_sent = None
                self._next_probe = now + self._probe_interval_s
            return
        if isinstance(event, xevent.ClientMessage) and event.client_type == atoms["WM_PROTOCOLS"]:
            _, data = event.data
            if data[0] != atoms["_NET_WM_PING"]:
                return
            pinged = self._pinged.get(int(data[2]))
            if pinged is None or pinged.waiting_since is None:
                return
            if pinged.hung:
                self._fault(pb.AppFault.KIND_RECOVERED, pinged, now - pinged.waiting_since)
            pinged.waiting_since, pinged.hung = None, False

    def _check_logon(self, root: Window, atoms: dict[str, int]) -> None:
        if self._desktop_up:
            return
        if root.get_full_property(atoms["_NET_SUPPORTING_WM_CHECK"], X.AnyPropertyType) is not None:
            self._desktop_up = True
            self._health.logon.reached(pb.LogonPhase.PHASE_DESKTOP_UP)

    def _ping_all(self, display: Display, root: Window, atoms: dict[str, int]) -> None:
        if self._listed is None:
            clients = root.get_full_property(atoms["_NET_CLIENT_LIST"], X.AnyPropertyType)
            self._listed = {int(window_id) for window_id in clients.value} if clients is not None else set()
        listed = self._listed
        if listed:
            self._health.logon.reached(pb.LogonPhase.PHASE_FIRST_WINDOW)
        for window_id in set(self._pinged) - listed:
            gone = self._pinged.pop(window_id)
            if gone.hung and gone.waiting_since is not None:
                self._fault(pb.AppFault.KIND_RECOVERED, gone, time.monotonic() - gone.waiting_since)
        self._not_pinged &= listed
        now = time.monotonic()
        for window_id in listed - self._not_pinged:
            window = display.create_resource_object("window", window_id)
            pinged = self._pinged.get(window_id) or self._learn(display, window, atoms)
            if pinged is None:
                continue
            if pinged.waiting_since is None:
                pinged.waiting_since = now
                message = xevent.ClientMessage(
                    window=window,
                    client_type=atoms["WM_PROTOCOLS"],
                    data=(32, [atoms["_NET_WM_PING"], X.CurrentTime, window_id, 0, 0]),
                )
                window.send_event(message, event_mask=0)  # an empty mask: to the window's own client
            elif not pinged.hung and now - pinged.waiting_since >= self._hang_after_s:
                pinged.hung = True
                self._fault(pb.AppFault.KIND_HUNG, pinged, now - pinged.waiting_since)
        display.flush()

    def _learn(self, display: Display, window: Window, atoms: dict[str, int]) -> _Pinged | None:
        """The window's app, when it advertises the ping (else it is remembered as not pinged)."""
        try:
            protocols = window.get_full_property(atoms["WM_PROTOCOLS"], Xatom.ATOM)
        except (xerror.BadWindow, xerror.BadDrawable):
            protocols = None
        info = describe_window(display, window)
        if protocols is None or atoms["_NET_WM_PING"] not in protocols.value or info is None:
            self._not_pinged.add(window.id)
            return None
        pinged = self._pinged[window.id] = _Pinged(info.app_id, info.pid, executable_of(info.pid))
        return pinged

    def _fault(self, kind: pb.AppFault.Kind.ValueType, pinged: _Pinged, hung_s: float) -> None:
        event = new_event()
        fault = event.app_fault
        fault.kind = kind
        fault.app_id = pinged.app_id
        fault.pid = pinged.pid
        fault.executable = pinged.executable
        fault.app_version = app_version(pinged.pid)
        fault.hung_ms = int(hung_s * 1000)
        self._emit(event)
