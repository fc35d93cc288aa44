"""Accessibility events while a recording is on: which element has the keyboard focus, that a field's text
changed, that the UI changed.

Apps send AT-SPI events only for the kinds some listener registered with the registry
(``org.a11y.atspi.Registry.RegisterEvent``); the listener registers its kinds at start on a connection
of its own and deregisters them at stop (the registry also drops them when that connection closes),
so outside a recording apps send the agent nothing.

* ``Focused(node)``: ``object:state-changed:focused`` with detail 1.
* ``TextChanged(node)``: ``object:text-changed``. The event carries the inserted or deleted text;
  it is dropped unread: only *that* the node's text changed is passed on.
* ``UiChanged``: ``object:children-changed`` and ``document:load-complete`` (a page or view changed).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from jeepney import DBusAddress, DBusErrorResponse, MatchRule, message_bus, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.low_level import HeaderFields

from session_agent.errors import ActionFailedError
from session_agent.recorder.inputs import STOP_JOIN_S
from session_agent.sensors.accessibility import accessibility_bus

logger = logging.getLogger(__name__)

_EVENTS = (
    "object:state-changed:focused",
    "object:text-changed",
    "object:children-changed",
    "document:load-complete",
)
_OBJECT = "org.a11y.atspi.Event.Object"
_DOCUMENT = "org.a11y.atspi.Event.Document"
_REGISTRY = DBusAddress(
    "/org/a11y/atspi/registry", bus_name="org.a11y.atspi.Registry", interface="org.a11y.atspi.Registry"
)
_RECEIVE_S = 0.25
_CALL_S = 2.0

Node = tuple[str, str]


@dataclass(frozen=True)
class UiChanged:
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Focused(UiChanged):
    node: Node = ("", "")


@dataclass(frozen=True)
class TextChanged(UiChanged):
    node: Node = ("", "")


AccessibleEvent = UiChanged | Focused | TextChanged


class AccessibleEvents:
    """The listener; ``on_event`` is called on its thread."""

    def __init__(self, session_bus: str, on_event: Callable[[AccessibleEvent], None]) -> None:
        self._session_bus = session_bus
        self._on_event = on_event
        self._connection: DBusConnection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self._session_bus:
            raise ActionFailedError("no D-Bus session bus: accessibility (AT-SPI) is not available")
        try:
            connection = self._connection = open_dbus_connection(bus=accessibility_bus(self._session_bus))
            focused = MatchRule(type="signal", interface=_OBJECT, member="StateChanged")
            focused.add_arg_condition(0, "focused")
            rules = [
                focused,
                MatchRule(type="signal", interface=_OBJECT, member="TextChanged"),
                MatchRule(type="signal", interface=_OBJECT, member="ChildrenChanged"),
                MatchRule(type="signal", interface=_DOCUMENT, member="LoadComplete"),
            ]
            for rule in rules:
                connection.send_and_get_reply(
                    new_method_call(message_bus, "AddMatch", "s", (rule.serialise(),)), timeout=_CALL_S
                )
            for kind in _EVENTS:
                _register(connection, kind)
        except (OSError, DBusErrorResponse, TimeoutError, ValueError) as exc:
            self.stop()
            raise ActionFailedError(f"accessibility (AT-SPI) events are not available: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="recorder-a11y-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_JOIN_S)
        connection, self._connection, self._thread = self._connection, None, None
        if connection is None:
            return
        for kind in _EVENTS:
            with contextlib.suppress(OSError, DBusErrorResponse, TimeoutError, ValueError):
                connection.send_and_get_reply(
                    new_method_call(_REGISTRY, "DeregisterEvent", "s", (kind,)), timeout=_CALL_S
                )
        connection.close()

    def _run(self) -> None:
        connection = self._connection
        assert connection is not None
        while not self._stop.is_set():
            try:
                message = connection.receive(timeout=_RECEIVE_S)
            except TimeoutError:
                continue
            except (OSError, ValueError) as exc:
                logger.warning("recording: the accessibility bus went away: %s", exc)
                return
            fields = message.header.fields
            interface = fields.get(HeaderFields.interface)
            member = fields.get(HeaderFields.member)
            sender = str(fields.get(HeaderFields.sender, ""))
            path = str(fields.get(HeaderFields.path, ""))
            if interface == _DOCUMENT:
                self._on_event(UiChanged())
            elif interface != _OBJECT:
                continue
            elif member == "StateChanged" and message.body[:2] == ("focused", 1):
                self._on_event(Focused(node=(sender, path)))
            elif member == "TextChanged":
                self._on_event(TextChanged(node=(sender, path)))
            elif member == "ChildrenChanged":
                self._on_event(UiChanged())


def _register(connection: DBusConnection, kind: str) -> None:
    """RegisterEvent as at-spi2-core 2.40+ takes it (kind, properties, app), else the older (kind)."""
    try:
        connection.send_and_get_reply(
            new_method_call(_REGISTRY, "RegisterEvent", "sass", (kind, [], "")), timeout=_CALL_S
        )
    except DBusErrorResponse:
        connection.send_and_get_reply(
            new_method_call(_REGISTRY, "RegisterEvent", "s", (kind,)), timeout=_CALL_S
        )
