"""Elements of a window found by their accessibility identity, and what the executor does to them, over
AT-SPI on D-Bus (the connection and window lookup of ``session_agent.sensors.accessibility``).

An ``ElementRef`` names a window, an AT-SPI role name ("push button", "text", "entry"), an accessible
name (exact) and a path of child indexes from the window's frame, and the alternatives a changed UI
leaves: its label text, its HTML id (the AT-SPI ``id`` attribute) and its bounds in the window. They
are tried in that order, and the element says which one found it (``found_by``):

1. ``path``: leads to an element of the given role and name;
2. ``role_name``: the window's tree searched depth first, in document order, for the first element of
   that role and name (when the ref sets a name, or a role and no alternative);
3. ``id_attribute``, then ``label``: the first element of the role (any, without one) whose ``id``
   attribute, else whose label (labelled-by relation, or the nearest text before it), is the ref's;
4. ``bounds``: the element of the role under the middle of the recorded bounds (a hit test).

Searches are bounded by ``SEARCH_MAX_NODES`` and the action's time; the showing part of the tree is
searched first, subtrees that are not showing (closed menus, hidden views) only when nothing there
matched. Apps that build their tree lazily (Chromium) get a few more tries within ``FIND_RETRY_S``.

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
from session_agent.executor.identity import (
    COMPONENT,
    SELECTION,
    Node,
    extents,
    hit_test,
    id_of,
    label_of,
    normalized,
    path_of,
)
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
EDITABLE_TEXT = "org.a11y.atspi.EditableText"
VALUE = "org.a11y.atspi.Value"
ROLE_PASSWORD = "password text"
STATE_EDITABLE = 7
STATE_FOCUSED = 12
FOUND_BY_PATH = "path"
FOUND_BY_ROLE_NAME = "role_name"
FOUND_BY_ID = "id_attribute"
FOUND_BY_LABEL = "label"
FOUND_BY_BOUNDS = "bounds"
SEARCH_MAX_NODES = 5000
FIND_RETRY_S = 3.0
_NULL_PATH = "/org/a11y/atspi/null"
# Action names that mean "activate this", in the order they are preferred.
_CLICK_ACTIONS = ("click", "press", "activate", "jump", "toggle", "open", "select")
_COORDS_SCREEN = 0
_EMBEDDED = "\ufffc"


@dataclass(frozen=True)
class Element:
    node: Node
    role: str
    name: str
    path: tuple[int, ...]
    window: WindowInfo
    found_by: str = ""

    def observed(self) -> dict[str, str]:
        observed = {
            "role": self.role,
            "name": self.name[:256],
            "path": "/".join(map(str, self.path)),
            "window_id": str(self.window.window_id),
        }
        if self.found_by:
            observed["found_by"] = self.found_by
        return observed


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
                element = self.lookup(window, ref, context, x11=x11)
                if element is not None:
                    return element
                if time.monotonic() >= give_up:
                    raise ActionFailedError(
                        f"no element {describe_element(ref)} in window {window.window_id:#x}"
                    )
            context.sleep(0.3)

    def frame(self, window: WindowInfo) -> Node | None:
        """The accessible of ``window`` (its frame), or None when it has none right now."""
        try:
            return TreeReader(self.client, WalkLimits()).find_window(window)
        except (DBusErrorResponse, TimeoutError):
            return None

    def lookup(
        self, window: WindowInfo, ref: pb.ElementRef, context: ActionContext, *, x11: X11Desktop | None = None
    ) -> Element | None:
        """One try at ``find``: None when the window has no such element (or no tree) right now. The
        bounds alternative needs ``x11`` (where the window is on the screen)."""
        frame = self.frame(window)
        if frame is None:
            return None
        element = None
        if ref.path:
            element = self._follow(frame, ref, window, context)
        # A role alone, with better alternatives at hand, would take the first element of that role.
        if element is None and (ref.name or not _has_alternatives(ref)):
            element = self._search(frame, ref, window, context)
        if element is None and (ref.id_attribute or ref.label):
            element = self._search_alternatives(frame, ref, window, context)
        if element is None and x11 is not None and ref.bounds.width and ref.bounds.height:
            element = self._at_bounds(frame, ref, window, x11, context)
        return element

    def is_protected(self, element: Element, context: ActionContext) -> bool:
        """A password field: role "password text" or the ``text-input-type: password`` attribute."""
        if element.role == ROLE_PASSWORD:
            return True
        attributes = self.call(element.node, ACCESSIBLE, "GetAttributes", context)
        return str(attributes.get("text-input-type", "")).lower() == "password"

    def interfaces(self, element: Element, context: ActionContext) -> set[str]:
        return {str(name) for name in self.call(element.node, ACCESSIBLE, "GetInterfaces", context)}

    def states(self, element: Element, context: ActionContext) -> int:
        low, high = self.call(element.node, ACCESSIBLE, "GetState", context)
        return int(low) | int(high) << 32

    def text(self, element: Element, context: ActionContext) -> str:
        """What the element holds: its text (embedded objects read as the sensor reads them), else its
        value, else its name."""
        interfaces = self.interfaces(element, context)
        if TEXT in interfaces:
            text = str(self.call(element.node, TEXT, "GetText", context, 0, -1))
            if _EMBEDDED not in text:
                return text
            limits = WalkLimits(deadline_s=max(0.1, min(2.0, context.remaining())))
            page, _ = TreeReader(self.client, limits).read(element.node)
            return page.text
        if VALUE in interfaces:
            return str(self.get(element.node, VALUE, "CurrentValue", context))
        return element.name

    def set_text(self, element: Element, text: str, context: ActionContext) -> bool:
        return bool(self.call(element.node, EDITABLE_TEXT, "SetTextContents", context, text))

    def insert_text(self, element: Element, text: str, context: ActionContext) -> bool:
        """Insert at the caret; the length is in bytes of UTF-8, as ATK counts it."""
        caret = int(self.get(element.node, TEXT, "CaretOffset", context))
        length = len(text.encode())
        return bool(
            self.call(
                element.node, EDITABLE_TEXT, "InsertText", context, caret, text, length, signature="isi"
            )
        )

    def do_action(self, element: Element, context: ActionContext) -> str | None:
        """Do the element's click-like action; its name, or None when it has none (or it failed)."""
        count = int(self.get(element.node, ACTION, "NActions", context))
        # GetName per action: Chromium answers GetActions with empty names.
        names = [
            str(self.call(element.node, ACTION, "GetName", context, index)).lower() for index in range(count)
        ]
        if not names:
            return None
        index = next((names.index(name) for name in _CLICK_ACTIONS if name in names), 0)
        done = self.call(element.node, ACTION, "DoAction", context, index)
        return (names[index] or str(index)) if done else None

    def grab_focus(self, element: Element, context: ActionContext) -> bool:
        return bool(self.call(element.node, COMPONENT, "GrabFocus", context))

    def center(self, element: Element, context: ActionContext) -> tuple[int, int]:
        """The middle of the element on the screen (root coordinates)."""
        x, y, width, height = self.call(
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
                bus_name, path = self.call(node, ACCESSIBLE, "GetChildAtIndex", context, int(index))
                node = (str(bus_name), str(path))
                if path == _NULL_PATH:
                    return None
            role = str(self.call(node, ACCESSIBLE, "GetRoleName", context))
            name = str(self.get(node, ACCESSIBLE, "Name", context))
        except (DBusErrorResponse, TimeoutError):
            return None
        if _matches(ref, role, name):
            return Element(node, role, name, tuple(ref.path), window, FOUND_BY_PATH)
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

    def _search_alternatives(
        self, frame: Node, ref: pb.ElementRef, window: WindowInfo, context: ActionContext
    ) -> Element | None:
        """The first element of the ref's role with its id attribute; else the first with its label."""
        budget = [SEARCH_MAX_NODES]
        label = normalized(ref.label).casefold()
        by_label: Element | None = None
        stack: list[tuple[Node, tuple[int, ...]]] = [(frame, ())]
        while stack and budget[0] > 0:
            node, path = stack.pop()
            budget[0] -= 1
            try:
                role = str(self.call(node, ACCESSIBLE, "GetRoleName", context))
                if not ref.role or role.casefold() == ref.role.casefold():
                    if ref.id_attribute and id_of(self, node, context) == ref.id_attribute:
                        name = str(self.get(node, ACCESSIBLE, "Name", context))
                        return Element(node, role, name, path, window, FOUND_BY_ID)
                    if (
                        label
                        and by_label is None
                        and normalized(label_of(self, node, context)).casefold() == label
                    ):
                        name = str(self.get(node, ACCESSIBLE, "Name", context))
                        by_label = Element(node, role, name, path, window, FOUND_BY_LABEL)
                        if not ref.id_attribute:
                            return by_label
                children = node_refs(self.call(node, ACCESSIBLE, "GetChildren", context))
            except (DBusErrorResponse, TimeoutError):
                continue
            stack.extend(reversed([(child, (*path, index)) for index, child in enumerate(children)]))
        return by_label

    def _at_bounds(
        self, frame: Node, ref: pb.ElementRef, window: WindowInfo, x11: X11Desktop, context: ActionContext
    ) -> Element | None:
        """The element of the ref's role under the middle of its recorded bounds, unless its id says it is
        another element (the next page of a form laid out alike, while it loads, has another field there)."""
        left, top = x11.origin(window.window_id)
        bounds = ref.bounds
        x, y = left + bounds.x + bounds.width // 2, top + bounds.y + bounds.height // 2
        try:
            node = hit_test(self, frame, x, y, context)
            if node is None:
                return None
            role = str(self.call(node, ACCESSIBLE, "GetRoleName", context))
            if ref.role and role.casefold() != ref.role.casefold():
                return None
            if ref.id_attribute and id_of(self, node, context) not in ("", ref.id_attribute):
                return None
            name = str(self.get(node, ACCESSIBLE, "Name", context))
            path = path_of(self, node, frame, context) or ()
        except (DBusErrorResponse, TimeoutError):
            return None
        return Element(node, role, name, path, window, FOUND_BY_BOUNDS)

    def select_option(self, element: Element, option: str, context: ActionContext) -> Element | None:
        """Choose the entry named ``option`` among the element's options (its children, or its popup
        menu's) by the entry's own action ("select", "click"), else through the Selection interface;
        the entry, or None when it has none of that name or neither way worked."""
        wanted = normalized(option)
        for holder in [
            element.node,
            *node_refs(self.call(element.node, ACCESSIBLE, "GetChildren", context))[:2],
        ]:
            entries = node_refs(self.call(holder, ACCESSIBLE, "GetChildren", context))
            for index, entry in enumerate(entries):
                name = str(self.get(entry, ACCESSIBLE, "Name", context))
                if normalized(name) != wanted:
                    continue
                found = Element(
                    entry, str(self.call(entry, ACCESSIBLE, "GetRoleName", context)), name, (), element.window
                )
                if ACTION in self.interfaces(found, context) and self.do_action(found, context) is not None:
                    return found
                holder_element = Element(holder, "", "", (), element.window)
                if SELECTION in self.interfaces(holder_element, context) and self.call(
                    holder, SELECTION, "SelectChild", context, index
                ):
                    return found
                return None
        return None

    def option_bounds(self, element: Element, option: str, context: ActionContext) -> tuple[int, int] | None:
        """The middle of the showing entry named ``option`` (an open drop-down's), for a pointer click."""
        wanted = normalized(option)
        for holder in [
            element.node,
            *node_refs(self.call(element.node, ACCESSIBLE, "GetChildren", context))[:2],
        ]:
            for entry in node_refs(self.call(holder, ACCESSIBLE, "GetChildren", context)):
                if normalized(str(self.get(entry, ACCESSIBLE, "Name", context))) != wanted:
                    continue
                x, y, width, height = extents(self, entry, context)
                if width > 0 and height > 0:
                    return x + width // 2, y + height // 2
        return None

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
                    low, _ = self.call(node, ACCESSIBLE, "GetState", context)
                    if not int(low) >> STATE_SHOWING & 1:
                        hidden.append((node, path))
                        continue
                role = str(self.call(node, ACCESSIBLE, "GetRoleName", context))
                if not ref.role or role.casefold() == ref.role.casefold():
                    name = str(self.get(node, ACCESSIBLE, "Name", context))
                    if _matches(ref, role, name):
                        return Element(node, role, name, path, window, FOUND_BY_ROLE_NAME)
                children = node_refs(self.call(node, ACCESSIBLE, "GetChildren", context))
            except (DBusErrorResponse, TimeoutError):
                continue  # the node went away (or its app hangs): not the one
            stack.extend(reversed([(child, (*path, index)) for index, child in enumerate(children)]))
        return None

    def call(
        self, node: Node, interface: str, method: str, context: ActionContext, *args: Any, **kw: Any
    ) -> Any:
        context.check()
        return self.client.call(
            node, interface, method, min(CALL_TIMEOUT_S, context.remaining()), *args, **kw
        )

    def get(self, node: Node, interface: str, name: str, context: ActionContext) -> Any:
        context.check()
        return self.client.get_property(node, interface, name, min(CALL_TIMEOUT_S, context.remaining()))


def _has_alternatives(ref: pb.ElementRef) -> bool:
    return bool(ref.id_attribute or ref.label or (ref.bounds.width and ref.bounds.height))


def _matches(ref: pb.ElementRef, role: str, name: str) -> bool:
    return (not ref.role or role.casefold() == ref.role.casefold()) and (not ref.name or name == ref.name)


def describe_element(ref: pb.ElementRef) -> str:
    parts = [
        f"role {ref.role!r}" if ref.role else "",
        f"name {ref.name!r}" if ref.name else "",
        f"path {'/'.join(map(str, ref.path))}" if ref.path else "",
        f"id {ref.id_attribute!r}" if ref.id_attribute else "",
        f"label {ref.label!r}" if ref.label else "",
    ]
    return " ".join(part for part in parts if part) or "(any)"
