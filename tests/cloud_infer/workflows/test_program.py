"""The macro program document: YAML round trip, JSON Schema, and the references it must resolve."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cloud_infer.workflows.program import (
    PROGRAM_VERSION,
    BindingInput,
    Check,
    ElementTarget,
    ItemInput,
    Loop,
    Parameter,
    ParamInput,
    Program,
    Step,
    WindowTarget,
    from_yaml,
    program_schema,
    to_yaml,
)

PORTAL = WindowTarget(app_id="chromium", title_contains="Expense portal")
NOTES = WindowTarget(app_id="mousepad", title_contains="costs.txt")


def field(name: str) -> ElementTarget:
    return ElementTarget(window=PORTAL, role="entry", name=name, label=name.title())


def claim_program() -> Program:
    return Program(
        name="报销 expense claim",
        parameters=[
            Parameter(name="amount", type="money", label="Amount"),
            Parameter(name="password", type="secret"),
        ],
        steps=[
            Step(
                id="read_costs",
                action="read",
                target=ElementTarget(window=NOTES, role="text"),
                save_as="costs",
            ),
            Step(
                id="fill_amount",
                action="type",
                target=field("amount"),
                input=ParamInput(param="amount"),
                checks=[Check(kind="field_value", target=field("amount"), equals=ParamInput(param="amount"))],
            ),
            Loop(
                id="each_cost",
                over="costs",
                row_pattern=r"^(?P<item>[^,]+),\s*(?P<cost>[0-9.]+)$",
                steps=[
                    Step(id="fill_cost", action="type", target=field("cost"), input=ItemInput(item="cost"))
                ],
            ),
            Step(
                id="submit",
                action="click",
                target=ElementTarget(window=PORTAL, role="push button", name="Submit"),
                sensitive=True,
                checks=[Check(kind="text_in_window", window=PORTAL, pattern=r"EXP-\d{6}", save_as="claim")],
            ),
        ],
        final_checks=[Check(kind="text_in_window", window=PORTAL, equals=BindingInput(binding="claim"))],
    )


def test_a_program_survives_its_yaml_document_unchanged() -> None:
    program = claim_program()
    text = to_yaml(program)
    assert text.startswith(f"version: {PROGRAM_VERSION}\n")
    assert "报销" in text  # human-readable, not escaped
    assert from_yaml(text) == program


def test_the_schema_describes_steps_loops_and_inputs() -> None:
    schema = program_schema()
    assert schema["title"] == "Program"
    for definition in ("Step", "Loop", "Check", "ElementTarget", "ParamInput", "ItemInput"):
        assert definition in schema["$defs"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["steps"][1]["input"].update(param="nope"), "unknown parameter 'nope'"),
        (lambda d: d["steps"][2].update(over="later"), "'later' is not saved by an earlier step"),
        (lambda d: d["steps"][2]["steps"][0]["input"].update(item="price"), "'price' is not a field"),
        (lambda d: d["steps"][3].update(id="fill_amount"), "used twice"),
        (lambda d: d["steps"][2].update(row_pattern="(?P<item>a"), "RE2 syntax"),
        (lambda d: d["steps"][1].pop("target"), "type needs a target"),
        (lambda d: d["parameters"][1].update(default="hunter2"), "cannot have a default"),
        (lambda d: d.update(surprise=1), "Extra inputs are not permitted"),
        (
            lambda d: d["steps"][1]["checks"][0].update(compare_as="money"),
            "compare_as 'money' is for a text_in_window check with equals",
        ),
    ],
)
def test_broken_documents_are_refused_with_where_and_why(edit: object, message: str) -> None:
    data = claim_program().model_dump(mode="json")
    edit(data)  # type: ignore[operator]
    with pytest.raises(ValidationError, match=message):
        Program.model_validate(data)


def test_a_backreference_pattern_is_refused_as_not_linear_time() -> None:
    with pytest.raises(ValidationError, match="RE2 syntax"):
        Loop(
            id="rows",
            over="costs",
            row_pattern=r"(?P<a>x)\1",
            steps=[Step(id="s", action="press", keys="Return")],
        )
