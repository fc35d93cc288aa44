"""Elements of a window found by their accessibility identity, and what the executor does to them, over
AT-SPI on D-Bus (the connection and window lookup of ``session_agent.sensors.accessibility``).

An ``ElementRef`` names a window, an AT-SPI role name ("push button", "text", "entry"), an accessible
name (exact) and a path of child indexes from the window's frame. The path is tried first; when it
leads nowhere, or to an element of another role or name, the window's tree is searched depth first,
in document order, for the first element of that role and name, bounded by ``SEARCH_MAX_NODES`` and
the action's time. The showing part of the tree is searched first; subtrees that are not showing
(closed menus, hidden views) only when nothing there matched. Apps that build their tree lazily (Chromium)
get a few more tries within ``FIND_RETRY_S``.

Password fields (role "password text", or ``text-input-type: password``, which is how Chromium marks
them) are never read; what may be typed into them is the workflow's decision
(``session_agent.executor.workflow``). AT-SPI has no "protected" state of its own: these two are the
marks GTK and Chromium give.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from jeepney import DBusErrorResponse

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.errors import ActionFailedError
from session_agent.executor.protocol import ActionContext
from session_agent.executor.x11 import X11Desktop
from session_agent.sensors.accessibility import (
    ACCESSIBLE,
    CALL_TIMEOUT_S,
    STATE_SHOWING,
    TEXT,
    AtspiClient,
    TreeReader,
    WalkLimits,
    node_refs,
)
from session_agent.sensors.window import WindowInfo

ACTION = "org.a11y.atspi.Action"
COMPONENT = "org.a11y.atspi.Component"
EDITABLE_TEXT = "org.a11y.atspi.EditableText"
VALUE = "org.a11y.atspi.Value"
ROLE_PASSWORD = "password text"
STATE_EDITABLE = 7
STATE_FOCUSED = 12
SEARCH_MAX_NODES = 5000
FIND_RETRY_S = 3.0
_NULL_PATH = "/org/a11y/atspi/null"
# Action names that mean "activate this", in the order they are preferred.
_CLICK_ACTIONS = ("click", "press", "activate", "jump", "toggle", "open", "select")
_COORDS_SCREEN = 0
_EMBEDDED = "\ufffc"

Node = tuple[str, str]


@dataclass(frozen=True)
class Element:
    node: Node
    role: str
    name: str
    path: tuple[int, ...]
    window: WindowInfo

    def observed(self) -> dict[str, str]:
        return {
            "role": self.role,
            "name": self.name[:256],
            "path": "/".join(map(str, self.path)),
            "window_id": str(self.window.window_id),
        }


class Accessibility:
    """One connection to the accessibility bus, for one action; a context manager."""

    def __init__(self, session_bus: str) -> None:
        if not session_bus:
            raise ActionFailedError("no D-Bus session bus: accessibility (AT-SPI) is not available")
        try:
            self.client = AtspiClient.connect(session_bus)
        except (OSError, DBusErrorResponse, TimeoutError, ValueError) as exc:
            raise ActionFailedError(f"accessibility (AT-SPI) is not available: {exc}") from exc

    def __enter__(self) -> Accessibility:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.close()

    def find(self, x11: X11Desktop, ref: pb.ElementRef, context: ActionContext) -> Element:
        """The element ``ref`` names; ActionFailedError when there is none. The window is looked up again
        on every try: its title (which the frame is matched by) may change meanwhile."""
        give_up = time.monotonic() + min(FIND_RETRY_S, max(0.0, context.remaining()))
        while True:
            try:
                window = x11.find(ref.window)
            except ActionFailedError:
                if time.monotonic() >= give_up:
                    raise
            else:
                element = self.lookup(window, ref, context)
                if element is not None:
                    return element
                if time.monotonic() >= give_up:
                    raise ActionFailedError(
                        f"no element {describe_element(ref)} in window {window.window_id:#x}"
                    )
            context.sleep(0.3)

    def lookup(self, window: WindowInfo, ref: pb.ElementRef, context: ActionContext) -> Element | None:
        """One try at ``find``: None when the window has no such element (or no tree) right now."""
        try:
            frame = TreeReader(self.client, WalkLimits()).find_window(window)
        except (DBusErrorResponse, TimeoutError):
            return None
        if frame is None:
            return None
        if ref.path:
            element = self._follow(frame, ref, window, context)
            if element is not None:
                return element
        return self._search(frame, ref, window, context)

    def is_protected(self, element: Element, context: ActionContext) -> bool:
        """A password field: role "password text" or the ``text-input-type: password`` attribute."""
        if element.role == ROLE_PASSWORD:
            return True
        attributes = self._call(element.node, ACCESSIBLE, "GetAttributes", context)
        return str(attributes.get("text-input-type", "")).lower() == "password"

    def interfaces(self, element: Element, context: ActionContext) -> set[str]:
        return {str(name) for name in self._call(element.node, ACCESSIBLE, "GetInterfaces", context)}

    def states(self, element: Element, context: ActionContext) -> int:
        low, high = self._call(element.node, ACCESSIBLE, "GetState", context)
        return int(low) | int(high) << 32

    def text(self, element: Element, context: ActionContext) -> str:
        """What the element holds: its text (embedded objects read as the sensor reads them), else its
        value, else its name."""
        interfaces = self.interfaces(element, context)
        if TEXT in interfaces:
            text = str(self._call(element.node, TEXT, "GetText", context, 0, -1))
            if _EMBEDDED not in text:
                return text
            limits = WalkLimits(deadline_s=max(0.1, min(2.0, context.remaining())))
            page, _ = TreeReader(self.client, limits).read(element.node)
            return page.text
        if VALUE in interfaces:
            return str(self._property(element.node, VALUE, "CurrentValue", context))
        return element.name

    def set_text(self, element: Element, text: str, context: ActionContext) -> bool:
        return bool(self._call(element.node, EDITABLE_TEXT, "SetTextContents", context, text))

    def insert_text(self, element: Element, text: str, context: ActionContext) -> bool:
        """Insert at the caret; the length is in bytes of UTF-8, as ATK counts it."""
        caret = int(self._property(element.node, TEXT, "CaretOffset", context))
        length = len(text.encode())
        return bool(
            self._call(
                element.node, EDITABLE_TEXT, "InsertText", context, caret, text, length, signature="isi"
            )
        )

    def do_action(self, element: Element, context: ActionContext) -> str | None:
        """Do the element's click-like action; its name, or None when it has none (or it failed)."""
        count = int(self._property(element.node, ACTION, "NActions", context))
        # GetName per action: Chromium answers GetActions with empty names.
        names = [
            str(self._call(element.node, ACTION, "GetName", context, index)).lower() for index in range(count)
        ]
        if not names:
            return None
        index = next((names.index(name) for name in _CLICK_ACTIONS if name in names), 0)
        done = self._call(element.node, ACTION, "DoAction", context, index)
        return (names[index] or str(index)) if done else None

    def grab_focus(self, element: Element, context: ActionContext) -> bool:
        return bool(self._call(element.node, COMPONENT, "GrabFocus", context))

    def center(self, element: Element, context: ActionContext) -> tuple[int, int]:
        """The middle of the element on the screen (root coordinates)."""
        x, y, width, height = self._call(
            element.node, COMPONENT, "GetExtents", context, _COORDS_SCREEN, signature="u"
        )
        if width <= 0 or height <= 0:
            raise ActionFailedError("the element has no size on the screen")
        return int(x) + int(width) // 2, int(y) + int(height) // 2

    def _follow(
        self, frame: Node, ref: pb.ElementRef, window: WindowInfo, context: ActionContext
    ) -> Element | None:
        node = frame
        try:
            for index in ref.path:
                bus_name, path = self._call(node, ACCESSIBLE, "GetChildAtIndex", context, int(index))
                node = (str(bus_name), str(path))
                if path == _NULL_PATH:
                    return None
            role = str(self._call(node, ACCESSIBLE, "GetRoleName", context))
            name = str(self._property(node, ACCESSIBLE, "Name", context))
        except (DBusErrorResponse, TimeoutError):
            return None
        if _matches(ref, role, name):
            return Element(node, role, name, tuple(ref.path), window)
        return None

    def _search(
        self, frame: Node, ref: pb.ElementRef, window: WindowInfo, context: ActionContext
    ) -> Element | None:
        """Depth first through the showing part of the tree; then through the hidden subtrees it skipped
        (closed menus, background tabs), so a showing element is found first and fast."""
        budget = [SEARCH_MAX_NODES]
        hidden: list[tuple[Node, tuple[int, ...]]] = []
        found = self._walk([(frame, ())], ref, window, context, budget, hidden)
        if found is None and hidden:
            found = self._walk(list(reversed(hidden)), ref, window, context, budget, None)
        return found

    def _walk(
        self,
        stack: list[tuple[Node, tuple[int, ...]]],
        ref: pb.ElementRef,
        window: WindowInfo,
        context: ActionContext,
        budget: list[int],
        hidden: list[tuple[Node, tuple[int, ...]]] | None,
    ) -> Element | None:
        """Search from ``stack``; when ``hidden`` is a list, subtrees not showing go there instead."""
        while stack and budget[0] > 0:
            node, path = stack.pop()
            budget[0] -= 1
            try:
                if hidden is not None:
                    low, _ = self._call(node, ACCESSIBLE, "GetState", context)
                    if not int(low) >> STATE_SHOWING & 1:
                        hidden.append((node, path))
                        continue
                role = str(self._call(node, ACCESSIBLE, "GetRoleName", context))
                if not ref.role or role.casefold() == ref.role.casefold():
                    name = str(self._property(node, ACCESSIBLE, "Name", context))
                    if _matches(ref, role, name):
                        return Element(node, role, name, path, window)
                children = node_refs(self._call(node, ACCESSIBLE, "GetChildren", context))
            except (DBusErrorResponse, TimeoutError):
                continue  # the node went away (or its app hangs): not the one
            stack.extend(reversed([(child, (*path, index)) for index, child in enumerate(children)]))
        return None

    def _call(
        self, node: Node, interface: str, method: str, context: ActionContext, *args: Any, **kw: Any
    ) -> Any:
        context.check()
        return self.client.call(
            node, interface, method, min(CALL_TIMEOUT_S, context.remaining()), *args, **kw
        )

    def _property(self, node: Node, interface: str, name: str, context: ActionContext) -> Any:
        context.check()
        return self.client.get_property(node, interface, name, min(CALL_TIMEOUT_S, context.remaining()))


def _matches(ref: pb.ElementRef, role: str, name: str) -> bool:
    return (not ref.role or role.casefold() == ref.role.casefold()) and (not ref.name or name == ref.name)


def describe_element(ref: pb.ElementRef) -> str:
    parts = [
        f"role {ref.role!r}" if ref.role else "",
        f"name {ref.name!r}" if ref.name else "",
        f"path {'/'.join(map(str, ref.path))}" if ref.path else "",
    ]
    return " ".join(part for part in parts if part) or "(any)"
