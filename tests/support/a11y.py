"""Reading a window of the test desktop through AT-SPI, as the agent does, for the fixture apps' tests."""

from __future__ import annotations

from dataclasses import dataclass

from jeepney import DBusErrorResponse
from Xlib.display import Display

from session_agent.sensors.accessibility import (
    ACCESSIBLE,
    CALL_TIMEOUT_S,
    AtspiClient,
    TreeReader,
    WalkLimits,
    node_refs,
)
from session_agent.sensors.window import describe_window
from shadowdesk_common.desktop import VirtualDesktop

LIMITS = WalkLimits(max_nodes=5000, deadline_s=10)


@dataclass(frozen=True)
class Node:
    role: int
    name: str
    attributes: dict[str, str]


def window_frame(client: AtspiClient, desktop: VirtualDesktop, window_id: int) -> tuple[str, str] | None:
    display = Display(desktop.display)
    try:
        window = describe_window(display, display.create_resource_object("window", window_id))
    finally:
        display.close()
    return None if window is None else TreeReader(client, LIMITS).find_window(window)


def window_text(client: AtspiClient, desktop: VirtualDesktop, window_id: int) -> str:
    """The window's text as the accessibility sensor reads it ("" while it has no tree yet)."""
    try:
        frame = window_frame(client, desktop, window_id)
        return "" if frame is None else TreeReader(client, LIMITS).read(frame)[0].text
    except (DBusErrorResponse, TimeoutError):
        return ""


def nodes(client: AtspiClient, root: tuple[str, str], max_nodes: int = 3000) -> list[Node]:
    """Every node under ``root``: its role, accessible name and object attributes (id, tag...)."""
    found: list[Node] = []
    pending = [root]
    while pending and len(found) < max_nodes:
        node = pending.pop()
        try:
            role = int(client.call(node, ACCESSIBLE, "GetRole", CALL_TIMEOUT_S))
            name = client.name(node, CALL_TIMEOUT_S)
            attributes = dict(client.call(node, ACCESSIBLE, "GetAttributes", CALL_TIMEOUT_S))
            children = node_refs(client.call(node, ACCESSIBLE, "GetChildren", CALL_TIMEOUT_S))
        except (DBusErrorResponse, TimeoutError):
            continue
        found.append(Node(role, name, {str(k): str(v) for k, v in attributes.items()}))
        pending.extend(reversed(children))
    return found
