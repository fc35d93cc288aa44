"""The compiler: a recording (the user's ``RecordedAction`` events) → a macro ``Program``. No model calls.

In order:

1. **Windows**: each window acted in becomes a ``WindowTarget`` whose ``title_contains`` is the part of
   its titles that stayed the same and names no file or number (``invoice-0042.pdf — Document Viewer``
   → ``Document Viewer``), so the next run finds the window with another document open.
2. **Noise** goes: key commands that are copies, pastes or focus moves (ctrl+c, ctrl+v, Tab), a click
   that only focused the field edited next, a click on the option chosen in a drop-down whose value
   follows, a click on a non-interactive element after which nothing happened elsewhere, a field's
   values but the last, copies never pasted, and every recorded focus change (focus steps are made
   again, once, wherever the next action needs another window; reading needs no focus).
3. **Bindings**: a value copied and then pasted (the field's final value is the pasted text) becomes a
   ``read`` of the copied-from element (``save_as``, with a pattern of the value's shape when it has
   one, so the number is taken out of a whole PDF page) and the field's input is that binding: each run
   reads it fresh from its source.
4. **Parameters**: every other value typed becomes a parameter named after the field's label, typed
   from the value (money, date, number, text; ``choice`` for a drop-down, ``secret`` for a password
   field, which never has a value), defaulting to what was recorded.
5. **Loops**: the same steps repeated over consecutive copies from one source (a line each time)
   become one ``Loop`` over the lines read from that source; ``row_pattern`` names the line ``line``.
   A click in the loop after which the window's text showed the row's value (an Add button whose page
   then lists the line) is checked by that value appearing (``text_in_window`` of ``item: line``).
6. **Checks**: ``field_value`` after each type/select (not secrets), ``window_focused`` after a focus,
   and a reference-like token (a claim number) that appeared after the final click becomes a
   ``text_in_window`` check with its shape as an RE2 pattern, saved and required by ``final_checks``;
   each value typed, chosen or pasted that the page after the final click shows back becomes a
   ``text_in_window`` check on that click (``confirmation.py``: an app that silently drops a field
   fails the run's proof).
   Buttons named submit/pay/send/delete (提交/支付/付款/发送/删除) are ``sensitive``; a pause the user
   had to make raises the next step's timeout (its wait for its target), never a sleep.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cloud_infer.workflows.confirmation import TypedValue, shown_value_checks
from cloud_infer.workflows.program import (
    BindingInput,
    Bounds,
    Check,
    ElementTarget,
    Input,
    ItemInput,
    Loop,
    Parameter,
    ParamInput,
    Program,
    Step,
    WindowTarget,
)
from cloud_infer.workflows.values import (
    CompareAs,
    Names,
    context_label,
    infer_type,
    new_tokens,
    sensitive,
    shape_pattern,
)
from protos.shadowdesk.v1 import ingest_pb2 as pb

K = pb.RecordedAction
_NOISE_KEYS = frozenset(
    {"ctrl+c", "ctrl+v", "ctrl+x", "ctrl+insert", "shift+insert", "tab", "shift+tab", "ctrl+a"}
)
_INTERACTIVE = frozenset(
    {
        "push button", "button", "toggle button", "check box", "radio button", "menu item", "check menu item",
        "radio menu item", "link", "combo box", "list item", "page tab", "entry", "text", "password text",
        "spin button", "slider", "tree item", "table cell", "menu", "switch", "option", "list box",
    }
)  # fmt: skip
_SELECT_ROLES = frozenset({"combo box", "list box"})
_EDITABLE_ROLES = frozenset({"entry", "text", "password text", "spin button", "combo box", "list box"})
_DEFAULT_TIMEOUT_S = 15.0
_MAX_TIMEOUT_S = 600.0
_LOOP_MAX_BLOCK = 30
LINE_ITEM = "line"
ROW_PATTERN = r"^\s*(?P<line>\S.*?)\s*$"
_SEPARATORS = re.compile("\\s+[\u2014\u2013|-]\\s+|\\s+\u00b7\\s+")  # em dash, en dash, |, -, middle dot
_VOLATILE = re.compile(r"\d|\.[A-Za-z0-9]{1,5}$|[/\\]")


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded action, with when it was committed (for thumbnails and the final check)."""

    action: pb.RecordedAction
    time_ns: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class FrameRef:
    time_ns: int
    key: str


@dataclass(frozen=True, slots=True)
class TextSeen:
    """Accessible text of a window seen during the recording (``TextSnapshot`` events)."""

    time_ns: int
    app_id: str
    text: str


@dataclass(eq=False)
class _Act:
    kind: str  # focus, click, field, copy, paste, key
    rec: Recorded
    window: WindowTarget
    waited_ms: int = 0
    binding_source: _Act | None = None  # field: the copy its value came from
    pasted_into: str = ""  # copy: the label of the field it was pasted into (names the binding)

    @property
    def action(self) -> pb.RecordedAction:
        return self.rec.action

    @property
    def element(self) -> pb.ElementRef:
        return self.rec.action.element

    @property
    def value(self) -> str:
        return self.rec.action.value

    def identity(self) -> tuple[object, ...]:
        element = self.element
        if element.id_attribute:
            return (self.window, element.role, element.id_attribute)
        return (self.window, element.role, element.name, element.label, tuple(element.path))

    def signature(self) -> tuple[object, ...]:
        source = self.binding_source.identity() if self.binding_source else None
        return (self.kind, self.identity(), self.action.keys, source, self.action.secret)


@dataclass(eq=False)
class _LoopAct:
    source: _Act  # the copy of the first row
    body: list[_Act]
    rows: list[list[_Act]]  # every recorded row's acts (the first is ``body``)


@dataclass
class _Emitter:
    names: Names = field(default_factory=Names)
    ids: set[str] = field(default_factory=set)
    parameters: list[Parameter] = field(default_factory=list)
    frames: Sequence[FrameRef] = ()
    read_values: dict[str, str] = field(default_factory=dict)  # binding → the value copied when recorded

    def step_id(self, base: str) -> str:
        stem = re.sub(r"[^a-z0-9_]+", "_", base.lower()).strip("_")[:56] or "step"
        if not stem[0].isalpha():
            stem = f"s_{stem}"[:56]
        name, n = stem, 1
        while name in self.ids:
            n += 1
            name = f"{stem}_{n}"
        self.ids.add(name)
        return name

    def thumbnail(self, time_ns: int) -> str:
        """The key of the frame nearest in time, if any frame was seen."""
        if not self.frames or not time_ns:
            return ""
        times = [f.time_ns for f in self.frames]
        i = bisect.bisect_left(times, time_ns)
        near = [j for j in (i - 1, i) if 0 <= j < len(self.frames)]
        return self.frames[min(near, key=lambda j: abs(times[j] - time_ns))].key


def compile_recording(
    recorded: Sequence[Recorded],
    *,
    name: str,
    frames: Sequence[FrameRef] = (),
    texts: Sequence[TextSeen] = (),
) -> Program:
    """The program the recording demonstrates. ValueError when nothing in it can be replayed."""
    ordered = sorted(recorded, key=lambda r: (r.seq, r.time_ns))
    windows = _window_targets([r.action for r in ordered])
    acts = _acts(ordered, windows)
    acts = _drop_noise(acts)
    acts = _pair_copies(acts)
    if not acts:
        raise ValueError("the recording has no actions to replay")
    plan = _find_loop(acts)
    emitter = _Emitter(frames=sorted(frames, key=lambda f: f.time_ns))
    steps: list[Step | Loop] = []
    current: WindowTarget | None = None
    bindings: dict[int, Input] = {}  # id of a copy act → the binding its read step saves
    for index, entry in enumerate(plan):
        if isinstance(entry, _LoopAct):
            following = plan[index + 1] if index + 1 < len(plan) else None
            end_ns = following.rec.time_ns if isinstance(following, _Act) else math.inf
            emitted_loop, after = _emit_loop(entry, emitter, texts, end_ns)
            steps.extend(emitted_loop)
            # with no rows the loop leaves the focus as it was: only then is it known after the loop
            current = current if after == current else None
        else:
            emitted, current = _emit(entry, emitter, current, bindings)
            steps.extend(emitted)
    final_checks = _final_check(ordered, acts, steps, texts, emitter)
    return Program(
        name=name[:256] or "Recorded macro",
        description="Compiled from a recording; edit the parameters and steps as needed.",
        parameters=emitter.parameters,
        steps=steps,
        final_checks=final_checks,
    )


# --- windows ------------------------------------------------------------------------------------


def _window_key(action: pb.RecordedAction) -> tuple[str, object]:
    window = action.window if action.window.app_id else action.element.window
    return (window.app_id, window.window_id or window.title_contains or action.window_title)


def _window_targets(actions: Sequence[pb.RecordedAction]) -> dict[tuple[str, object], WindowTarget]:
    titles: dict[tuple[str, object], list[str]] = {}
    for action in actions:
        title = action.window_title or action.window.title_contains or action.element.window.title_contains
        key = _window_key(action)
        if key[0]:
            titles.setdefault(key, [])
            if title:
                titles[key].append(title)
    return {
        key: WindowTarget(app_id=key[0][:128], title_contains=_stable_title(seen))
        for key, seen in titles.items()
    }


def _stable_title(titles: Sequence[str]) -> str:
    """The longest title segment every title has, without digits, file extensions or paths."""
    if not titles:
        return ""
    segments = [[s.strip() for s in _SEPARATORS.split(t) if s.strip()] for t in titles]
    common = [s for s in segments[0] if all(s in other for other in segments[1:])]
    stable = [s for s in common if not _VOLATILE.search(s)]
    return max(stable, key=len, default="")[:512]


# --- acts and noise -----------------------------------------------------------------------------

_KINDS = {
    K.KIND_FOCUS: "focus",
    K.KIND_CLICK: "click",
    K.KIND_FIELD_VALUE: "field",
    K.KIND_COPY: "copy",
    K.KIND_PASTE: "paste",
    K.KIND_KEY_COMMAND: "key",
}


def _acts(recorded: Sequence[Recorded], windows: dict[tuple[str, object], WindowTarget]) -> list[_Act]:
    acts: list[_Act] = []
    waited = 0
    for rec in recorded:
        action = rec.action
        if action.kind == K.KIND_WAIT:
            waited += action.waited_ms
            continue
        kind = _KINDS.get(action.kind)
        window = windows.get(_window_key(action))
        if kind is None or window is None:
            continue  # STARTED/STOPPED markers; an action with no window cannot be found again
        if kind == "key" and (not action.keys or action.keys.lower() in _NOISE_KEYS):
            continue
        acts.append(_Act(kind, rec, window, waited_ms=waited))
        waited = 0
    return acts


def _noise(act: _Act, following: _Act | None) -> bool:
    if act.kind == "focus":
        return True  # focus steps are made again from what each action needs
    if act.kind != "click" or following is None:
        return False
    edits_next = following.kind in ("field", "paste") and following.identity() == act.identity()
    picks_option = (
        following.kind == "field"
        and following.element.role in _SELECT_ROLES
        and act.element.name.strip() == following.value.strip()
    )
    inert = act.element.role not in _INTERACTIVE and following.window == act.window
    return edits_next or picks_option or inert


def _drop_noise(acts: list[_Act]) -> list[_Act]:
    while True:  # until nothing more goes: dropping an option's click makes its drop-down's click noise
        kept: list[_Act] = []
        waited = 0  # a wait before dropped noise is a wait before the next kept action
        for i, act in enumerate(acts):
            following = next((a for a in acts[i + 1 :] if a.kind != "focus"), None)
            if _noise(act, following):
                waited += act.waited_ms
                continue
            act.waited_ms += waited
            waited = 0
            kept.append(act)
        if len(kept) == len(acts):
            break
        acts = kept
    return _drop_superseded(kept)


def _drop_superseded(acts: list[_Act]) -> list[_Act]:
    """A field edited again before any click or key (which could have used its value) keeps its last value."""
    dropped: set[int] = set()
    open_edits: dict[tuple[object, ...], int] = {}
    for i, act in enumerate(acts):
        if act.kind in ("click", "key"):
            open_edits.clear()
        elif act.kind == "field":
            earlier = open_edits.get(act.identity())
            if earlier is not None:
                dropped.add(earlier)
            open_edits[act.identity()] = i
    return [a for i, a in enumerate(acts) if i not in dropped]


def _pair_copies(acts: list[_Act]) -> list[_Act]:
    """Pastes become the field's binding to the copy; copies nobody pasted and bare pastes go."""
    result: list[_Act] = []
    copies: list[_Act] = []
    pasted: dict[tuple[object, ...], _Act] = {}  # field identity → the copy pasted into it
    for act in acts:
        if act.kind == "copy":
            copies.append(act)
            result.append(act)
        elif act.kind == "paste":
            source = next((c for c in reversed(copies) if c.value.strip() == act.value.strip()), None)
            if source is not None:
                pasted[act.identity()] = source
                source.pasted_into = source.pasted_into or _what(act)
                # The field's final value follows; if it never does, the paste is the value.
                result.append(_Act("field", act.rec, act.window, act.waited_ms, binding_source=source))
            else:
                result.append(_Act("field", act.rec, act.window, act.waited_ms))
        elif act.kind == "field":
            source = pasted.get(act.identity())
            if source is not None and source.value.strip() == act.value.strip():
                act.binding_source = source
                source.pasted_into = source.pasted_into or _what(act)
            # This is the field's final value: the provisional one made from its paste goes.
            provisional = [
                r for r in result if r.rec.action.kind == K.KIND_PASTE and r.identity() == act.identity()
            ]
            for paste in provisional:
                act.waited_ms += paste.waited_ms
            result = [r for r in result if r not in provisional]
            result.append(act)
        else:
            result.append(act)
    used = {id(a.binding_source) for a in result if a.binding_source is not None}
    return [a for a in result if a.kind != "copy" or id(a) in used]


# --- loops --------------------------------------------------------------------------------------


def _find_loop(acts: list[_Act]) -> list[_Act | _LoopAct]:
    """Replace the longest run of a repeated block fed by copies from one source with one loop."""
    best: tuple[int, int, int] | None = None  # (covered, start, block length)
    n = len(acts)
    for length in range(2, min(_LOOP_MAX_BLOCK, n // 2) + 1):
        for start in range(0, n - 2 * length + 1):
            block = [a.signature() for a in acts[start : start + length]]
            copies = [a for a in acts[start : start + length] if a.kind == "copy"]
            if len(copies) != 1 or acts[start].kind != "copy":
                continue
            reps = 1
            while (
                start + (reps + 1) * length <= n
                and [a.signature() for a in acts[start + reps * length : start + (reps + 1) * length]]
                == block
            ):
                reps += 1
            values = {acts[start + r * length].value for r in range(reps)}
            if reps >= 2 and len(values) == reps and (best is None or reps * length > best[0]):
                best = (reps * length, start, length)
    if best is None:
        return list(acts)
    covered, start, length = best
    rows = [acts[row : row + length] for row in range(start, start + covered, length)]
    loop = _LoopAct(source=acts[start], body=rows[0], rows=rows)
    return [*acts[:start], loop, *acts[start + covered :]]


# --- emitting steps -----------------------------------------------------------------------------


def _target(act: _Act) -> ElementTarget:
    element = act.element
    bounds = None
    if element.HasField("bounds"):
        b = element.bounds
        bounds = Bounds(x=b.x, y=b.y, width=b.width, height=b.height)
    return ElementTarget(
        window=act.window,
        role=element.role[:64],
        name=element.name[:512],
        path=list(element.path)[:64],
        label=element.label[:512],
        id_attribute=element.id_attribute[:256],
        bounds=bounds,
    )


def _what(act: _Act) -> str:
    element = act.element
    return (element.label or element.name or element.role or act.window.app_id).strip()[:80]


def _timeout(act: _Act) -> float:
    if not act.waited_ms:
        return _DEFAULT_TIMEOUT_S
    return min(_MAX_TIMEOUT_S, max(_DEFAULT_TIMEOUT_S, math.ceil(act.waited_ms / 1000 * 3)))


def _needs_window(act: _Act) -> bool:
    return act.kind in ("click", "field", "key")


def _emit(
    act: _Act, emitter: _Emitter, current: WindowTarget | None, bindings: dict[int, Input]
) -> tuple[list[Step], WindowTarget | None]:
    """The steps of one act, with a focus step first when it needs a window not focused yet."""
    steps: list[Step] = []
    thumb = emitter.thumbnail(act.rec.time_ns)
    if _needs_window(act) and act.window != current:
        focus_id = emitter.step_id(f"focus_{act.window.title_contains or act.window.app_id}")
        steps.append(
            Step(
                id=focus_id,
                name=f"Focus {act.window.title_contains or act.window.app_id}",
                action="focus",
                window=act.window,
                checks=[Check(kind="window_focused", window=act.window)],
                timeout_s=_timeout(act),
                thumbnail=thumb,
            )
        )
        current = act.window
    what = _what(act)
    if act.kind == "copy":
        what = act.pasted_into or what
        save_as = emitter.names.take(what, "value")
        bindings[id(act)] = BindingInput(binding=save_as)
        emitter.read_values[save_as] = act.value
        steps.append(
            Step(
                id=emitter.step_id(f"read_{save_as}"),
                name=f"Read {what} from {act.window.title_contains or act.window.app_id}",
                action="read",
                target=_target(act),
                save_as=save_as,
                pattern=shape_pattern(act.value),
                timeout_s=_timeout(act),
                thumbnail=thumb,
            )
        )
    elif act.kind == "click":
        steps.append(
            Step(
                id=emitter.step_id(f"click_{what}"),
                name=f"Click {what}",
                action="click",
                target=_target(act),
                sensitive=sensitive(act.element.name, act.element.label),
                timeout_s=_timeout(act),
                thumbnail=thumb,
            )
        )
    elif act.kind == "key":
        steps.append(
            Step(
                id=emitter.step_id(f"press_{act.action.keys}"),
                name=f"Press {act.action.keys}",
                action="press",
                window=act.window,
                keys=act.action.keys[:64],
                sensitive=act.action.keys.lower() in ("return", "enter", "kp_enter")
                and sensitive(act.element.name, act.element.label),
                timeout_s=_timeout(act),
                thumbnail=thumb,
            )
        )
    else:
        steps.append(_field_step(act, emitter, bindings, what, thumb))
    return steps, current


def _field_step(act: _Act, emitter: _Emitter, bindings: dict[int, Input], what: str, thumb: str) -> Step:
    target = _target(act)
    select = act.element.role in _SELECT_ROLES
    value_input: Input
    if act.binding_source is not None and id(act.binding_source) in bindings:
        value_input = bindings[id(act.binding_source)]
    else:
        name = emitter.names.take(what)
        if act.action.secret or act.element.role == "password text":
            parameter = Parameter(name=name, type="secret", label=what)
        elif select:
            parameter = Parameter(
                name=name, type="choice", label=what, default=act.value, choices=[act.value]
            )
        else:
            parameter = Parameter(name=name, type=infer_type(act.value, what), label=what, default=act.value)
        emitter.parameters.append(parameter)
        value_input = ParamInput(param=name)
    secret = act.action.secret or act.element.role == "password text"
    checks = [] if secret else [Check(kind="field_value", target=target, equals=value_input)]
    return Step(
        id=emitter.step_id(f"{'select' if select else 'type'}_{what}"),
        name=f"{'Choose' if select else 'Enter'} {what}",
        action="select" if select else "type",
        target=target,
        input=value_input,
        checks=checks,
        timeout_s=_timeout(act),
        thumbnail=thumb,
    )


def _emit_loop(
    loop: _LoopAct, emitter: _Emitter, texts: Sequence[TextSeen], end_ns: float
) -> tuple[list[Step | Loop], WindowTarget | None]:
    """A read of the source's lines, then the loop over them; and the window focused after a row."""
    source = loop.source
    where = source.window.title_contains or source.window.app_id
    lines = emitter.names.take(f"{source.pasted_into or _what(source)} lines", "lines")
    read = Step(
        id=emitter.step_id(f"read_{lines}"),
        name=f"Read the lines of {where}",
        action="read",
        target=_target(source),
        save_as=lines,
        thumbnail=emitter.thumbnail(source.rec.time_ns),
    )
    bindings: dict[int, Input] = {id(source): ItemInput(item=LINE_ITEM)}
    body: list[Step] = []
    current: WindowTarget | None = None
    for index, act in enumerate(loop.body):
        if act is source:
            continue
        emitted, current = _emit(act, emitter, current, bindings)
        if act.kind == "click" and _shows_its_row(loop, index, texts, end_ns):
            # The page lists the row once it took it (an Add button): proof the row was added, and the
            # next row waits for it instead of typing into the page being replaced.
            shown = Check(kind="text_in_window", window=act.window, equals=ItemInput(item=LINE_ITEM))
            emitted[-1] = emitted[-1].model_copy(update={"checks": [*emitted[-1].checks, shown]})
        body.extend(emitted)
    loop_id = emitter.step_id(f"each_{lines}")
    return [
        read,
        Loop(
            id=loop_id,
            name=f"For each line of {where}",
            over=lines,
            row_pattern=ROW_PATTERN,
            steps=body,
        ),
    ], current


def _shows_its_row(loop: _LoopAct, index: int, texts: Sequence[TextSeen], end_ns: float) -> bool:
    """Whether, in some recorded row, the row's value appeared in the window's text after the click at
    ``index`` of the body (before the same click of the next row) and not before it."""
    for number, row in enumerate(loop.rows):
        click, value = row[index], row[0].value.strip()
        after_ns = click.rec.time_ns
        until_ns = loop.rows[number + 1][index].rec.time_ns if number + 1 < len(loop.rows) else end_ns
        seen = [t for t in texts if t.app_id == click.window.app_id and value in t.text]
        shown_before = any(t.time_ns <= after_ns for t in seen)
        if value and not shown_before and any(after_ns < t.time_ns < until_ns for t in seen):
            return True
    return False


# --- the final check ----------------------------------------------------------------------------


def _final_check(
    recorded: Sequence[Recorded],
    acts: Sequence[_Act],
    steps: list[Step | Loop],
    texts: Sequence[TextSeen],
    emitter: _Emitter,
) -> list[Check]:
    """What the app showed after the final click: a reference (a claim number), checked, saved and
    required at the end; and the values typed earlier that it shows back, each checked."""
    clicks = [a for a in acts if a.kind in ("click", "key")]
    last_step = steps[-1]
    if not clicks or not isinstance(last_step, Step) or last_step.action not in ("click", "press"):
        return []
    final = clicks[-1]
    after_ns = final.rec.time_ns
    later = [r for r in recorded if r.seq > final.rec.seq]
    before_text = "\n".join(t.text for t in texts if t.time_ns <= after_ns)
    before_text += "\n" + "\n".join(r.action.window_title for r in recorded if r.seq <= final.rec.seq)
    page_after = "\n".join(t.text for t in texts if t.time_ns > after_ns and t.app_id == final.window.app_id)
    after_parts = [page_after, *(r.action.window_title for r in later)]
    after_parts += [r.action.value for r in later if r.action.kind == K.KIND_COPY]
    typed = {r.action.value.strip() for r in recorded if r.action.value and r.seq <= final.rec.seq}
    checks: list[Check] = []
    final_checks: list[Check] = []
    found = new_tokens("\n".join(after_parts), before_text, typed)
    pattern = shape_pattern(found[0][0]) if found else ""
    if pattern:
        name = emitter.names.take(context_label(found[0][1]), "confirmation")
        checks.append(Check(kind="text_in_window", window=final.window, pattern=pattern, save_as=name))
        final_checks.append(
            Check(kind="text_in_window", window=final.window, equals=BindingInput(binding=name))
        )
    checks += shown_value_checks(_typed_values(steps[:-1], emitter), page_after, final.window)
    steps[-1] = last_step.model_copy(update={"checks": [*last_step.checks, *checks]})
    return final_checks


def _typed_values(steps: Sequence[Step | Loop], emitter: _Emitter) -> list[TypedValue]:
    """What each step outside a loop typed or chose (never a secret), with its value as recorded."""
    parameters = {p.name: p for p in emitter.parameters}
    typed: list[TypedValue] = []
    for step in steps:
        if not isinstance(step, Step) or step.action not in ("type", "select"):
            continue
        if isinstance(step.input, ParamInput):
            parameter = parameters[step.input.param]
            if parameter.type != "secret" and parameter.default is not None:
                typed.append(TypedValue(step.input, parameter.default, _compare_as(parameter.type)))
        elif isinstance(step.input, BindingInput) and step.input.binding in emitter.read_values:
            value = emitter.read_values[step.input.binding]
            # A value read has no parameter type: its shape says what it is.
            typed.append(TypedValue(step.input, value, _compare_as(infer_type(value))))
    return typed


def _compare_as(kind: str) -> CompareAs:
    return "money" if kind == "money" else "date" if kind == "date" else "text"
