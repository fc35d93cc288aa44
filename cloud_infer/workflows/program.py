"""The macro program: a versioned, human-readable document of typed steps.

A user's macro is stored as YAML (``to_yaml``/``from_yaml``) and validated against this model, whose
JSON Schema (``program_schema``) the sidebar's editor and ``docs/workflows.md`` show. A step names its
target with every alternative needed to find it again (role/name/path, label text, id, position),
takes its input from a parameter, a literal, a value read earlier in the run, or the current row of a
loop, waits for its target (never a fixed sleep), acts once through the command downlink, and then
checks its postconditions by reading back. ``version`` changes only with an incompatible format.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import re2
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud_infer.workflows.values import CompareAs

PROGRAM_VERSION: Literal[1] = 1

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="lower_snake_case name")]
Text = Annotated[str, Field(max_length=4096)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowTarget(_Model):
    """A top-level window: its app and, optionally, part of its title."""

    app_id: Annotated[str, Field(min_length=1, max_length=128)]
    title_contains: Annotated[str, Field(max_length=512)] = ""


class Bounds(_Model):
    x: int
    y: int
    width: Annotated[int, Field(ge=0)]
    height: Annotated[int, Field(ge=0)]


class ElementTarget(_Model):
    """An element inside a window, with the alternatives used when the first match fails."""

    window: WindowTarget
    role: Annotated[str, Field(max_length=64)] = ""
    name: Annotated[str, Field(max_length=512)] = ""
    path: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list, max_length=64)
    label: Annotated[str, Field(max_length=512)] = ""
    id_attribute: Annotated[str, Field(max_length=256)] = ""
    bounds: Bounds | None = None


class Parameter(_Model):
    """A value the user gives at run time (the run form shows ``label``)."""

    name: Name
    type: Literal["text", "money", "date", "number", "choice", "secret"] = "text"
    label: Annotated[str, Field(max_length=256)] = ""
    default: Text | None = None
    # For type "choice".
    choices: list[Text] = Field(default_factory=list, max_length=256)
    required: bool = True

    @model_validator(mode="after")
    def _secret_has_no_default(self) -> Parameter:
        if self.type == "secret" and self.default is not None:
            raise ValueError(f"secret parameter {self.name!r} cannot have a default")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"choice parameter {self.name!r} needs choices")
        return self


class ParamInput(_Model):
    param: Name


class LiteralInput(_Model):
    literal: Text


class BindingInput(_Model):
    """A value read earlier in this run by a step with ``save_as``."""

    binding: Name


class ItemInput(_Model):
    """A field of the current row of the enclosing loop (a named group of its ``row_pattern``)."""

    item: Name


Input = ParamInput | LiteralInput | BindingInput | ItemInput


class Check(_Model):
    """A postcondition, read back after the action (accessibility; OCR of a frame when there is none)."""

    kind: Literal["field_value", "window_focused", "text_in_window", "element_exists", "file_exists"]
    target: ElementTarget | None = None
    window: WindowTarget | None = None
    # field_value: the element's value equals this; text_in_window: the window shows this text.
    equals: Input | None = None
    # text_in_window: an RE2 pattern the window's text must match (e.g. a claim number).
    pattern: Annotated[str, Field(max_length=512)] = ""
    # file_exists: the path (may use an input).
    path: Input | None = None
    # Save what matched (text_in_window) for later steps, e.g. the claim number.
    save_as: Name | None = None
    # text_in_window with equals: the app may show the value in another rendering of the same money
    # amount (1,280.00 as ¥1280.00) or day (2026年11月23日 as 2026-11-23); text is the value as is.
    compare_as: CompareAs = "text"

    @model_validator(mode="after")
    def _compare_as_needs_a_shown_value(self) -> Check:
        if self.compare_as != "text" and (self.kind != "text_in_window" or self.equals is None):
            raise ValueError(f"compare_as {self.compare_as!r} is for a text_in_window check with equals")
        return self


Action = Literal[
    "focus", "launch", "click", "type", "select", "press", "read", "find_text", "set_clipboard", "wait"
]


class Step(_Model):
    """One action on one target, with its wait and its postconditions."""

    id: Name
    name: Annotated[str, Field(max_length=256)] = ""
    action: Action
    target: ElementTarget | None = None
    window: WindowTarget | None = None
    input: Input | None = None
    # press: key names joined by "+"; launch: the executable and its arguments.
    keys: Annotated[str, Field(max_length=64)] = ""
    executable: Annotated[str, Field(max_length=256)] = ""
    args: list[Text] = Field(default_factory=list, max_length=32)
    # read / find_text: keep the value for later steps; row_pattern splits it into loop rows.
    save_as: Name | None = None
    # read / find_text: an RE2 pattern applied to the text found; what is kept is its first group
    # (or the whole match), e.g. the invoice number out of a PDF page's text.
    pattern: Annotated[str, Field(max_length=512)] = ""
    checks: list[Check] = Field(default_factory=list, max_length=16)
    # submit, pay, send, delete: the run waits for the user's confirmation before acting.
    sensitive: bool = False
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 15.0
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    # Frame thumbnail of the step as recorded (a key in the user's space), for the editor.
    thumbnail: Annotated[str, Field(max_length=512)] = ""

    @model_validator(mode="after")
    def _has_what_its_action_needs(self) -> Step:
        needs_target = {"click", "type", "select", "read"}
        if self.action in needs_target and self.target is None:
            raise ValueError(f"step {self.id!r}: {self.action} needs a target")
        if self.action in {"type", "select", "set_clipboard"} and self.input is None:
            raise ValueError(f"step {self.id!r}: {self.action} needs an input")
        if self.action == "press" and not self.keys:
            raise ValueError(f"step {self.id!r}: press needs keys")
        if self.action == "launch" and not self.executable:
            raise ValueError(f"step {self.id!r}: launch needs an executable")
        if self.action in {"focus", "find_text"} and self.window is None and self.target is None:
            raise ValueError(f"step {self.id!r}: {self.action} needs a window")
        if self.pattern:
            try:
                re2.compile(self.pattern)
            except re2.error as exc:
                raise ValueError(f"step {self.id!r}: invalid pattern (RE2 syntax): {exc}") from exc
        return self


class Loop(_Model):
    """Run ``steps`` once per row of a value read earlier (e.g. every line of a cost list)."""

    id: Name
    name: Annotated[str, Field(max_length=256)] = ""
    over: Name = Field(description="a binding saved by an earlier read step")
    # RE2 pattern with named groups applied to each line; a line that does not match is skipped.
    row_pattern: Annotated[str, Field(min_length=1, max_length=512)]
    steps: list[Step] = Field(min_length=1, max_length=200)

    @property
    def fields(self) -> list[str]:
        return list(re2.compile(self.row_pattern).groupindex)

    @model_validator(mode="after")
    def _pattern_compiles(self) -> Loop:
        # RE2: patterns come from users and must run in linear time.
        try:
            re2.compile(self.row_pattern)
        except re2.error as exc:
            raise ValueError(f"loop {self.id!r}: invalid row pattern (RE2 syntax): {exc}") from exc
        return self


class Program(_Model):
    version: Literal[1] = PROGRAM_VERSION
    name: Annotated[str, Field(min_length=1, max_length=256)]
    description: Annotated[str, Field(max_length=4096)] = ""
    parameters: list[Parameter] = Field(default_factory=list, max_length=64)
    steps: list[Step | Loop] = Field(min_length=1, max_length=500)
    # Checked after the last step; the run is complete only when these hold too.
    final_checks: list[Check] = Field(default_factory=list, max_length=16)

    @model_validator(mode="after")
    def _names_resolve(self) -> Program:
        params = {p.name for p in self.parameters}
        if len(params) != len(self.parameters):
            raise ValueError("parameter names must be unique")
        ids: set[str] = set()
        saved: set[str] = set()

        def check_input(where: str, value: Input | None, items: set[str]) -> None:
            if isinstance(value, ParamInput) and value.param not in params:
                raise ValueError(f"{where}: unknown parameter {value.param!r}")
            if isinstance(value, BindingInput) and value.binding not in saved:
                raise ValueError(f"{where}: {value.binding!r} is not saved by an earlier step")
            if isinstance(value, ItemInput) and value.item not in items:
                raise ValueError(f"{where}: {value.item!r} is not a field of the enclosing loop's rows")

        def visit(step: Step, items: set[str]) -> None:
            if step.id in ids:
                raise ValueError(f"step id {step.id!r} is used twice")
            ids.add(step.id)
            check_input(f"step {step.id!r}", step.input, items)
            for check in step.checks:
                check_input(f"step {step.id!r} check", check.equals, items)
                check_input(f"step {step.id!r} check", check.path, items)
                if check.save_as:
                    saved.add(check.save_as)
            if step.save_as:
                saved.add(step.save_as)

        for entry in self.steps:
            if isinstance(entry, Loop):
                if entry.id in ids:
                    raise ValueError(f"step id {entry.id!r} is used twice")
                ids.add(entry.id)
                if entry.over not in saved:
                    raise ValueError(f"loop {entry.id!r}: {entry.over!r} is not saved by an earlier step")
                items = set(entry.fields)
                for step in entry.steps:
                    visit(step, items)
            else:
                visit(entry, set())
        for check in self.final_checks:
            check_input("final check", check.equals, set())
        return self


def program_schema() -> dict[str, Any]:
    """The JSON Schema of a program document."""
    return Program.model_json_schema()


def to_yaml(program: Program) -> str:
    data = program.model_dump(mode="json", exclude_defaults=True)
    data = {"version": program.version, **data}
    text: str = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)
    return text


def from_yaml(text: str) -> Program:
    """Parse and validate a program document; yaml.YAMLError or pydantic.ValidationError when invalid."""
    return Program.model_validate(yaml.safe_load(text))
