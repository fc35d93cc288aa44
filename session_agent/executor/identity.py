"""An element's accessible identity and its alternatives, read over AT-SPI: what a recording writes into an
``ElementRef`` and what the executor's fallbacks compare against.

* **path**: child indexes from the window's frame down to the element (``GetIndexInParent`` walking
  up through ``Parent``).
* **label**: the text of the elements it is labelled by (the ``labelled-by`` relation, how HTML
  ``<label for>`` and GTK mnemonic labels appear), else the nearest text before it: its parent's own
  text up to it (``Notes <input>`` gives "Notes"), else the text of one of its previous siblings.
  An element that names itself (a button, a link) is its own label: the text before a button is
  another field's (a password field's dots, a date typed), not what the button is. Masked text
  (only bullets) is never a label.
* **id_attribute**: the ``id`` attribute Chromium gives HTML elements with an id.
* **bounds**: where it is within its window (screen extents less the window's origin).
* **hit test**: the deepest element under a screen point, asking ``Component.GetAccessibleAtPoint``
  from the window's frame down.
* **value**: what a field holds — its text, or a drop-down's selected option — never a password
  field's (callers check ``is_protected`` first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jeepney import DBusErrorResponse

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.executor.protocol import ActionContext
from session_agent.sensors.accessibility import ACCESSIBLE, STATE_SHOWING, TEXT, node_refs

if TYPE_CHECKING:  # elements.py imports this module
    from session_agent.executor.elements import Accessibility, Element

Node = tuple[str, str]
COMPONENT = "org.a11y.atspi.Component"
SELECTION = "org.a11y.atspi.Selection"
RELATION_LABELLED_BY = 2
# Roles whose value is the entry chosen from a list (HTML select, GTK combo box).
ROLES_WITH_OPTIONS = frozenset({"combo box", "list box", "menu button"})
# Most parents walked up from a hit-tested element to its window's frame.
MAX_DEPTH = 64
_NULL_PATH = "/org/a11y/atspi/null"
_COORDS_SCREEN = 0
_EMBEDDED = "\ufffc"
_LABEL_SIBLINGS = 3
_MAX_LABEL_CHARS = 256
_ROLE_TEXT_LEAF = "static"
_HIT_SETTLE_S = 0.1
_MAX_ROLE_CHARS = 64


def normalized(text: str) -> str:
    """Whitespace collapsed, embedded-object characters dropped: how labels are compared."""
    return " ".join(text.replace(_EMBEDDED, " ").split())


def node_text(a11y: Accessibility, node: Node, context: ActionContext) -> str:
    """A node's own text (without its embedded children), else its name."""
    interfaces = {str(name) for name in a11y.call(node, ACCESSIBLE, "GetInterfaces", context)}
    if TEXT in interfaces:
        text = normalized(str(a11y.call(node, TEXT, "GetText", context, 0, -1)))
        if text:
            return text
    return normalized(str(a11y.get(node, ACCESSIBLE, "Name", context)))


def parent_of(a11y: Accessibility, node: Node, context: ActionContext) -> Node | None:
    bus_name, path = a11y.get(node, ACCESSIBLE, "Parent", context)
    return None if str(path) == _NULL_PATH else (str(bus_name), str(path))


def label_of(a11y: Accessibility, node: Node, context: ActionContext) -> str:
    """The element's label (see the module docstring); "" when it has none."""
    for relation, targets in a11y.call(node, ACCESSIBLE, "GetRelationSet", context):
        if int(relation) != RELATION_LABELLED_BY:
            continue
        texts = [node_text(a11y, (str(bus), str(path)), context) for bus, path in targets]
        label = " ".join(text for text in texts if text)
        if label:
            return label[:_MAX_LABEL_CHARS]
    own = normalized(str(a11y.get(node, ACCESSIBLE, "Name", context)))
    if own:
        return own[:_MAX_LABEL_CHARS]
    parent = parent_of(a11y, node, context)
    if parent is None:
        return ""
    index = int(a11y.call(node, ACCESSIBLE, "GetIndexInParent", context))
    siblings = node_refs(a11y.call(parent, ACCESSIBLE, "GetChildren", context))[:index]
    roles = [str(a11y.call(sibling, ACCESSIBLE, "GetRoleName", context)) for sibling in siblings]
    interfaces = {str(name) for name in a11y.call(parent, ACCESSIBLE, "GetInterfaces", context)}
    if TEXT in interfaces:
        # Hypertext: each child that is not a text leaf holds one embedded-object character.
        text = str(a11y.call(parent, TEXT, "GetText", context, 0, -1))
        embedded = sum(role != _ROLE_TEXT_LEAF for role in roles)
        parts = text.split(_EMBEDDED)
        if embedded < len(parts):
            before = normalized(parts[embedded])
            if before and not _masked(before):
                return before[:_MAX_LABEL_CHARS]
    for sibling in list(reversed(siblings))[:_LABEL_SIBLINGS]:
        text = node_text(a11y, sibling, context)
        if text and not _masked(text):
            return text.splitlines()[-1][:_MAX_LABEL_CHARS]
    return ""


def _masked(text: str) -> bool:
    """Only a password field's bullets (and spaces): nothing to name an element by."""
    return not text.strip("•●∙*· \n")


def id_of(a11y: Accessibility, node: Node, context: ActionContext) -> str:
    attributes = a11y.call(node, ACCESSIBLE, "GetAttributes", context)
    return str(attributes.get("id", ""))


def path_of(a11y: Accessibility, node: Node, frame: Node, context: ActionContext) -> tuple[int, ...] | None:
    """Child indexes from ``frame`` down to ``node``; None when ``node`` is not inside ``frame``."""
    path: list[int] = []
    current = node
    for _ in range(MAX_DEPTH):
        if current == frame:
            return tuple(reversed(path))
        index = int(a11y.call(current, ACCESSIBLE, "GetIndexInParent", context))
        if index < 0:
            return None  # an element its parent does not list (evince's page view): no path to it
        path.append(index)
        parent = parent_of(a11y, current, context)
        if parent is None:
            return None
        current = parent
    return None


def extents(a11y: Accessibility, node: Node, context: ActionContext) -> tuple[int, int, int, int]:
    x, y, width, height = a11y.call(node, COMPONENT, "GetExtents", context, _COORDS_SCREEN, signature="u")
    return int(x), int(y), int(width), int(height)


def hit_test(a11y: Accessibility, frame: Node, x: int, y: int, context: ActionContext) -> Node | None:
    """The element under the screen point (x, y) in ``frame`` (a text leaf gives its parent); None when
    there is none. Chromium answers from a cache and hit-tests the page in the background, so a point
    asked for the first time may give the last answer: it is asked again after ``_HIT_SETTLE_S``."""
    first = _hit(a11y, frame, x, y, context)
    context.sleep(_HIT_SETTLE_S)
    found = _hit(a11y, frame, x, y, context) or first
    if found is not None and str(a11y.call(found, ACCESSIBLE, "GetRoleName", context)) == _ROLE_TEXT_LEAF:
        found = parent_of(a11y, found, context) or found
    return found


def _hit(a11y: Accessibility, frame: Node, x: int, y: int, context: ActionContext) -> Node | None:
    node, found = frame, None
    for _ in range(MAX_DEPTH):
        try:
            bus_name, path = a11y.call(
                node, COMPONENT, "GetAccessibleAtPoint", context, x, y, _COORDS_SCREEN, signature="iiu"
            )
        except DBusErrorResponse:
            break  # a node without Component: its parent is as deep as the hit test goes
        child = (str(bus_name), str(path))
        if path == _NULL_PATH or child == node:
            break
        low, _ = a11y.call(child, ACCESSIBLE, "GetState", context)
        if not int(low) >> STATE_SHOWING & 1:
            break  # a closed drop-down's entries lie under it too: not what is on the screen
        node = found = child
    return found


def selected_option(a11y: Accessibility, node: Node, context: ActionContext) -> str | None:
    """The name of the selected entry of a drop-down (its own Selection, or its popup menu's)."""
    holders = [node, *node_refs(a11y.call(node, ACCESSIBLE, "GetChildren", context))[:2]]
    for holder in holders:
        interfaces = {str(name) for name in a11y.call(holder, ACCESSIBLE, "GetInterfaces", context)}
        if SELECTION not in interfaces:
            continue
        if int(a11y.get(holder, SELECTION, "NSelectedChildren", context)) < 1:
            return ""
        bus_name, path = a11y.call(holder, SELECTION, "GetSelectedChild", context, 0)
        return normalized(str(a11y.get((str(bus_name), str(path)), ACCESSIBLE, "Name", context)))
    return None


def field_value(a11y: Accessibility, element: Element, context: ActionContext) -> str:
    """What a field holds: a drop-down's selected option, else its text (or value, or name)."""
    if element.role in ROLES_WITH_OPTIONS:
        option = selected_option(a11y, element.node, context)
        if option is not None:
            return option
    return a11y.text(element, context)


def element_ref(
    a11y: Accessibility,
    element: Element,
    frame: Node,
    window_origin: tuple[int, int],
    context: ActionContext,
) -> pb.ElementRef:
    """Everything a recording keeps to find ``element`` again (window ref included)."""
    window = element.window
    path = element.path or path_of(a11y, element.node, frame, context) or ()
    ref = pb.ElementRef(
        window=pb.WindowRef(window_id=window.window_id, app_id=window.app_id[:_MAX_LABEL_CHARS]),
        role=element.role[:_MAX_ROLE_CHARS],
        name=element.name[:_MAX_LABEL_CHARS],
        path=list(path),
        label=label_of(a11y, element.node, context),
        id_attribute=id_of(a11y, element.node, context)[:_MAX_LABEL_CHARS],
    )
    x, y, width, height = extents(a11y, element.node, context)
    if width > 0 and height > 0:
        ref.bounds.CopyFrom(
            pb.Rect(x=x - window_origin[0], y=y - window_origin[1], width=width, height=height)
        )
    return ref
