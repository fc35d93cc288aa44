"""Accessibility sensor: the text of the focused window, read from its AT-SPI tree over D-Bus.

AT-SPI is a D-Bus protocol: ``org.a11y.Bus.GetAddress`` on the session bus names the accessibility
bus, where the registry lists one root per application and every node implements
``org.a11y.atspi.Accessible`` (and ``Text``, ``Document`` where it has them). On start the sensor sets
``org.a11y.Status.IsEnabled``, the flag screen readers set, and it asks each new app root for its
attributes: Chromium builds the tree of its windows only after both; GTK apps expose theirs anyway.

On a focus change, and every ``interval_s`` while the focus stays, the focused window's tree is walked
(bounded by nodes, depth, characters and a deadline, so a huge page cannot stall the agent) and its
showing text, in reading order, is sent as a ``TextSnapshot`` when it differs from the last one sent.
Never read: password fields (role PASSWORD_TEXT or ``text-input-type: password``), single-line input
fields, and private windows (``session_agent.privacy``). A web document's URL is sent as a
``UrlVisit`` when it changes. Without a session bus or AT-SPI the sensor logs a warning and does
nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from jeepney import DBusAddress, DBusErrorResponse, Properties, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.wrappers import unwrap_msg
from Xlib import X
from Xlib import error as xerror
from Xlib.display import Display

from session_agent.errors import SensorError
from session_agent.privacy import PrivacyRules
from session_agent.sensors.base import Emit, new_event
from session_agent.sensors.window import MAX_NAME_CHARS, MAX_TITLE_CHARS, WindowInfo, describe_window

logger = logging.getLogger(__name__)

SOURCE = "atspi"
# The cloud refuses longer URLs (8192 by default); a cut URL would be a wrong one, so it is not sent.
MAX_URL_CHARS = 8192
CALL_TIMEOUT_S = 1.0
ACCESSIBLE = "org.a11y.atspi.Accessible"
TEXT = "org.a11y.atspi.Text"
DOCUMENT = "org.a11y.atspi.Document"
# AtspiRole and AtspiStateType values (at-spi2-core atspi-constants.h).
ROLE_PUSH_BUTTON = 43
ROLE_PASSWORD_TEXT = 40
ROLE_TOGGLE_BUTTON = 62
ROLE_LINK = 88
ROLE_DOCUMENT_WEB = 95
ROLE_STATIC = 116
STATE_EDITABLE = 7
STATE_SHOWING = 25
STATE_SINGLE_LINE = 26
# Button labels are the app's chrome (Back, Reload, Close), not what the user reads.
_SKIPPED_ROLES = frozenset({ROLE_PUSH_BUTTON, ROLE_TOGGLE_BUTTON})
# Children inlined into their parent's line; any other embedded child starts a line of its own.
_INLINE_ROLES = frozenset({ROLE_LINK, ROLE_STATIC})
# Where hypertext (Chromium, GTK labels with links) holds the place of a child object.
_EMBEDDED = "\ufffc"


@dataclass(frozen=True)
class WalkLimits:
    max_nodes: int = 2000
    max_depth: int = 40
    max_chars: int = 32_000
    deadline_s: float = 2.0


@dataclass
class Page:
    """What one walk of a window found."""

    text: str
    url: str = ""
    title: str = ""


@dataclass
class _Walk:
    limits: WalkLimits
    deadline: float
    nodes: int = 0
    chars: int = 0
    url: str = ""
    title: str = ""
    cut: bool = False

    def exhausted(self) -> bool:
        limits = self.limits
        if (
            self.nodes >= limits.max_nodes
            or self.chars >= limits.max_chars
            or time.monotonic() >= self.deadline
        ):
            self.cut = True
        return self.cut

    def remaining_s(self) -> float:
        return min(CALL_TIMEOUT_S, self.deadline - time.monotonic())


def is_protected(role: int, single_line_editable: bool, attributes: dict[str, str]) -> bool:
    """Whether a node's text must never be read: password fields and single-line input fields."""
    return (
        role == ROLE_PASSWORD_TEXT
        or attributes.get("text-input-type", "").lower() == "password"
        or single_line_editable
    )


class AtspiClient:
    """Blocking calls on the accessibility bus, each with a deadline."""

    def __init__(self, connection: DBusConnection) -> None:
        self._connection = connection

    @classmethod
    def connect(cls, session_bus: str) -> AtspiClient:
        """Enable accessibility on the desktop and connect to its bus (OSError, DBusErrorResponse if none)."""
        return cls(open_dbus_connection(bus=accessibility_bus(session_bus)))

    def close(self) -> None:
        self._connection.close()

    def call(
        self,
        node: tuple[str, str],
        interface: str,
        method: str,
        timeout: float,
        *args: Any,
        signature: str | None = None,
    ) -> Any:
        """The first value of the reply; ``signature`` defaults to "i" per int and "s" per other argument."""
        if signature is None:
            signature = "".join("i" if isinstance(arg, int) else "s" for arg in args) or None
        address = DBusAddress(node[1], bus_name=node[0], interface=interface)
        return _reply(self._connection, new_method_call(address, method, signature, args), timeout)[0]

    def get_property(self, node: tuple[str, str], interface: str, name: str, timeout: float) -> Any:
        address = DBusAddress(node[1], bus_name=node[0], interface=interface)
        return _reply(self._connection, Properties(address).get(name), timeout)[0][1]

    def name(self, node: tuple[str, str], timeout: float) -> str:
        return str(self.get_property(node, ACCESSIBLE, "Name", timeout))

    def applications(self) -> list[tuple[str, str]]:
        registry = ("org.a11y.atspi.Registry", "/org/a11y/atspi/accessible/root")
        return node_refs(self.call(registry, ACCESSIBLE, "GetChildren", CALL_TIMEOUT_S))

    def pid(self, bus_name: str) -> int:
        daemon = DBusAddress(
            "/org/freedesktop/DBus", bus_name="org.freedesktop.DBus", interface="org.freedesktop.DBus"
        )
        message = new_method_call(daemon, "GetConnectionUnixProcessID", "s", (bus_name,))
        return int(_reply(self._connection, message, CALL_TIMEOUT_S)[0])


def accessibility_bus(session_bus: str) -> str:
    """Enable accessibility on the desktop; the address of its bus (OSError, DBusErrorResponse if none)."""
    with open_dbus_connection(bus=session_bus) as session:
        bus = DBusAddress("/org/a11y/bus", bus_name="org.a11y.Bus", interface="org.a11y.Bus")
        status = DBusAddress("/org/a11y/bus", bus_name="org.a11y.Bus", interface="org.a11y.Status")
        address = str(_reply(session, new_method_call(bus, "GetAddress"), 5.0)[0])
        _reply(session, Properties(status).set("IsEnabled", "b", True), 5.0)
    return address


def node_refs(references: Any) -> list[tuple[str, str]]:
    """(bus name, object path) pairs of an ``a(so)`` reply."""
    return [(str(bus_name), str(path)) for bus_name, path in references]


def _reply(connection: DBusConnection, message: Any, timeout: float) -> tuple[Any, ...]:
    reply = connection.send_and_get_reply(message, timeout=max(timeout, 0.001))
    # An error reply (e.g. the app just exited) raises DBusErrorResponse instead of passing its text on.
    return tuple(unwrap_msg(reply))


class TreeReader:
    """Finds a window's node in the AT-SPI tree and walks it into text in reading order."""

    def __init__(self, client: AtspiClient, limits: WalkLimits) -> None:
        self._client = client
        self._limits = limits
        self._pids: dict[str, int] = {}  # unique bus names are never reused

    def find_window(self, window: WindowInfo) -> tuple[str, str] | None:
        """The frame of ``window``: among the apps of its pid (all apps when none match), by title."""
        apps = self._client.applications()
        for app in apps:
            if app[0] not in self._pids:
                self._pids[app[0]] = self._greet(app)
        live = {bus_name for bus_name, _ in apps}
        self._pids = {bus_name: pid for bus_name, pid in self._pids.items() if bus_name in live}
        # Apps in another pid namespace (sandboxes) report pids that do not match _NET_WM_PID.
        candidates = [app for app in apps if self._pids[app[0]] == window.pid] or apps
        for app in candidates:
            try:
                frames = node_refs(self._client.call(app, ACCESSIBLE, "GetChildren", CALL_TIMEOUT_S))
                for frame in frames:
                    if self._client.name(frame, CALL_TIMEOUT_S) == window.title:
                        return frame
            except (DBusErrorResponse, TimeoutError):
                continue  # an app that died or hangs is not the one we look for
            # Some toolkits name the frame differently from the X title; one window of the pid is it.
            if self._pids[app[0]] == window.pid:
                if len(frames) == 1:
                    return frames[0]
                # A title that just changed (a page's) may not have reached the tree yet; Chromium also
                # lists hidden frames: the only showing frame of the pid is the window.
                showing = [frame for frame in frames if self._showing(frame)]
                if len(showing) == 1:
                    return showing[0]
        return None

    def _showing(self, node: tuple[str, str]) -> bool:
        try:
            low, _ = self._client.call(node, ACCESSIBLE, "GetState", CALL_TIMEOUT_S)
        except (DBusErrorResponse, TimeoutError):
            return False
        return bool(int(low) >> STATE_SHOWING & 1)

    def _greet(self, app: tuple[str, str]) -> int:
        """The pid of a newly seen app, after asking its root's attributes: Chromium builds its tree
        of the browser window only once an assistive technology made that call."""
        try:
            self._client.call(app, ACCESSIBLE, "GetAttributes", CALL_TIMEOUT_S)
            return self._client.pid(app[0])
        except (DBusErrorResponse, TimeoutError):
            return 0

    def read(self, frame: tuple[str, str]) -> tuple[Page, bool]:
        """The frame's text, URL and title, and whether a limit cut the walk short."""
        walk = _Walk(self._limits, time.monotonic() + self._limits.deadline_s)
        _, text = self._visit(frame, 0, walk)
        lines = (" ".join(line.split()) for line in text.splitlines())
        joined = "\n".join(line for line in lines if line)[: self._limits.max_chars]
        return Page(joined, walk.url, walk.title), walk.cut

    def _visit(self, node: tuple[str, str], depth: int, walk: _Walk) -> tuple[int, str]:
        """The node's role and the text of its subtree ("" for hidden, protected or skipped nodes)."""
        if depth > walk.limits.max_depth:
            walk.cut = True
            return 0, ""
        if walk.exhausted():
            return 0, ""
        walk.nodes += 1
        try:
            return self._read_node(node, depth, walk)
        except TimeoutError:
            walk.cut = True  # a hung app: keep what was read, stop asking it
            return 0, ""
        except DBusErrorResponse:
            return 0, ""  # the node went away while being read (pages change under the walk)

    def _read_node(self, node: tuple[str, str], depth: int, walk: _Walk) -> tuple[int, str]:
        role = int(self._call(walk, node, ACCESSIBLE, "GetRole"))
        low, high = self._call(walk, node, ACCESSIBLE, "GetState")
        states = int(low) | int(high) << 32
        if not states >> STATE_SHOWING & 1 or role in _SKIPPED_ROLES:
            return role, ""
        interfaces = set(self._call(walk, node, ACCESSIBLE, "GetInterfaces"))
        if role == ROLE_DOCUMENT_WEB and DOCUMENT in interfaces and not walk.url:
            document = self._call(walk, node, DOCUMENT, "GetAttributes")
            walk.url = str(document.get("DocURL") or document.get("URI") or "")
            walk.title = str(document.get("Title", ""))
        # The state, not the EditableText interface: Chromium's input fields lack the interface.
        if states >> STATE_EDITABLE & 1 or role == ROLE_PASSWORD_TEXT:
            single_line = bool(states >> STATE_SINGLE_LINE & 1)
            attributes = {} if single_line else self._call(walk, node, ACCESSIBLE, "GetAttributes")
            if is_protected(role, single_line, attributes):
                return role, ""
        if TEXT not in interfaces:
            children = node_refs(self._call(walk, node, ACCESSIBLE, "GetChildren"))
            return role, "\n".join(self._visit(child, depth + 1, walk)[1] for child in children)
        text = str(self._call(walk, node, TEXT, "GetText", 0, -1))
        walk.chars += len(text)
        if _EMBEDDED not in text:
            return role, text  # its children's text, if any, is already part of it
        return role, self._hypertext(node, text, depth, walk)

    def _hypertext(self, node: tuple[str, str], text: str, depth: int, walk: _Walk) -> str:
        """``text`` with each embedded-object character replaced by that child's text.

        Chromium lists a text leaf (static) as a child although its text is already the parent's, while
        an inline element (``<strong>``, ``<em>``: static too) holds an embedded-object character like
        any other child. So a static child whose text comes next in the parent's text, before the next
        embedded-object character, is a leaf; any other child is the object at that character."""
        pieces: list[str] = []
        emitted = 0  # text[:emitted] is in pieces
        searched = 0  # where the next leaf or object is looked for
        unplaced: list[str] = []  # objects beyond the text's last embedded-object character
        for child in node_refs(self._call(walk, node, ACCESSIBLE, "GetChildren")):
            role, child_text = self._visit(child, depth + 1, walk)
            embedded = text.find(_EMBEDDED, searched)
            if role == ROLE_STATIC:
                if not child_text:
                    continue  # an empty text leaf
                leaf = text.find(child_text, searched, len(text) if embedded < 0 else embedded)
                if leaf >= 0:
                    searched = leaf + len(child_text)
                    continue
            shown = child_text if role in _INLINE_ROLES else f"\n{child_text}\n"
            if embedded < 0:
                unplaced.append(shown)
                continue
            pieces += [text[emitted:embedded], shown]
            emitted = searched = embedded + 1
        pieces.append(text[emitted:].replace(_EMBEDDED, ""))
        return "".join(pieces + unplaced)

    def _call(self, walk: _Walk, node: tuple[str, str], interface: str, method: str, *args: Any) -> Any:
        return self._client.call(node, interface, method, walk.remaining_s(), *args)


class AccessibilitySensor:
    name = "accessibility"

    def __init__(
        self,
        display: str,
        emit: Emit,
        *,
        interval_s: float,
        poll_s: float,
        privacy: PrivacyRules | None = None,
        limits: WalkLimits | None = None,
        session_bus: str | None = None,
    ) -> None:
        self._display_name = display
        self._emit = emit
        self._interval_s = interval_s
        self._poll_s = poll_s
        self._privacy = privacy or PrivacyRules()
        self._limits = limits or WalkLimits()
        self._session_bus = (
            session_bus if session_bus is not None else os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
        )
        self._last_text: tuple[int, bytes] | None = None
        self._last_url = ""
        self.walks = 0

    def run(self, stop: threading.Event) -> None:
        if not self._session_bus:
            logger.warning("accessibility sensor off: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset)")
            return
        try:
            client = AtspiClient.connect(self._session_bus)
        except (OSError, DBusErrorResponse, TimeoutError, ValueError) as exc:
            logger.warning("accessibility sensor off: AT-SPI is not available on the session bus: %s", exc)
            return
        try:
            display = Display(self._display_name)
        except (xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
            client.close()
            raise SensorError(f"cannot open X display {self._display_name!r}: {exc}") from exc
        try:
            self._watch(display, TreeReader(client, self._limits), stop)
        except (xerror.ConnectionClosedError, OSError) as exc:
            raise SensorError(f"lost X display or accessibility bus: {exc}") from exc
        finally:
            display.close()
            client.close()

    def _watch(self, display: Display, reader: TreeReader, stop: threading.Event) -> None:
        active_atom = display.get_atom("_NET_ACTIVE_WINDOW")
        root = display.screen().root
        focused = 0
        next_walk = 0.0
        while not stop.is_set():
            prop = root.get_full_property(active_atom, X.AnyPropertyType)
            window_id = int(prop.value[0]) if prop is not None and len(prop.value) else 0
            now = time.monotonic()
            if window_id and (window_id != focused or now >= next_walk):
                window = describe_window(display, display.create_resource_object("window", window_id))
                if window is not None:
                    self.sense(reader, window)
                next_walk = time.monotonic() + self._interval_s
            focused = window_id
            stop.wait(self._poll_s)

    def sense(self, reader: TreeReader, window: WindowInfo) -> None:
        """Walk ``window`` once and emit what changed; skip it when it is private."""
        if self._privacy.is_private(window.app_id, window.wm_class, window.title):
            return
        try:
            frame = reader.find_window(window)
            if frame is None:
                logger.debug("window %#x (%s) has no accessible tree", window.window_id, window.app_id)
                return
            page, cut = reader.read(frame)
        except (DBusErrorResponse, TimeoutError) as exc:
            logger.debug("accessibility walk of window %#x failed: %s", window.window_id, exc)
            return
        self.walks += 1
        if cut:
            logger.debug("accessibility walk of window %#x cut short by its limits", window.window_id)
        if page.url and page.url != self._last_url and len(page.url) <= MAX_URL_CHARS:
            self._last_url = page.url
            event = new_event()
            event.url.app_id = window.app_id
            event.url.url = page.url
            event.url.title = (page.title or window.title)[:MAX_TITLE_CHARS]
            self._emit(event)
        digest = hashlib.blake2b(page.text.encode(), digest_size=16).digest()
        if not page.text or self._last_text == (window.window_id, digest):
            return
        self._last_text = (window.window_id, digest)
        event = new_event()
        event.text.window_id = window.window_id
        event.text.app_id = window.app_id[:MAX_NAME_CHARS]
        event.text.source = SOURCE
        event.text.text = page.text
        self._emit(event)
