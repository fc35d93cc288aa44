"""The compiler on realistic recordings: noise out, bindings, typed parameters, checks, loops."""

from __future__ import annotations

import re2

from cloud_infer.workflows.compiler import FrameRef, Recorded, compile_recording
from cloud_infer.workflows.program import (
    BindingInput,
    Check,
    ItemInput,
    Loop,
    ParamInput,
    Program,
    Step,
    from_yaml,
    to_yaml,
)
from cloud_infer.workflows.values import infer_type, rendering_pattern, shape_pattern, snake_name
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.recordings import (
    CLAIM_NUMBER,
    PORTAL,
    WEEK_LINES,
    K,
    Script,
    element,
    expense_claim,
    portal_title,
    weekly_report,
)


def steps_of(program: Program) -> list[Step]:
    found: list[Step] = []
    for entry in program.steps:
        found.extend(entry.steps if isinstance(entry, Loop) else [entry])
    return found


def by_id(program: Program) -> dict[str, Step]:
    return {step.id: step for step in steps_of(program)}


def test_the_expense_claim_compiles_to_bindings_parameters_checks_and_a_final_claim_number() -> None:
    script = expense_claim()
    program = compile_recording(script.actions, name="报销 expense claim", texts=script.texts)
    steps = by_id(program)
    # noise: one focus where the portal is first needed, none for the PDF (reads need no focus);
    # the clicks that only focused fields, the inert clicks, the option click, Tab and ctrl+c are gone
    assert [s.id for s in steps_of(program)] == [
        "focus_expense_portal",
        "type_username",
        "type_password",
        "click_sign_in",
        "read_invoice_number",
        "type_invoice_number",
        "read_amount",
        "type_amount",
        "type_invoice_date",
        "type_vendor",
        "select_category",
        "type_cost_centre",
        "click_submit_claim",
    ]
    assert steps["focus_expense_portal"].window is not None
    assert steps["focus_expense_portal"].window.title_contains == "Expense Portal"
    assert [c.kind for c in steps["focus_expense_portal"].checks] == ["window_focused"]
    # copied from the PDF and pasted: read fresh each run from the source, with the value's shape
    read = steps["read_invoice_number"]
    assert read.action == "read" and read.save_as == "invoice_number" and read.target is not None
    assert (read.target.window.app_id, read.target.window.title_contains) == ("evince", "Document Viewer")
    assert (
        re2.search(read.pattern, "Invoice No.: INV-2031-7781  Date: 2031-01-02").group(0) == "INV-2031-7781"
    )
    assert steps["type_invoice_number"].input == BindingInput(binding="invoice_number")
    assert steps["type_amount"].input == BindingInput(binding="amount")
    assert re2.search(steps["read_amount"].pattern, "Total ¥980.00").group(0) == "¥980.00"
    # typed literals: parameters with types, defaults, and the field's label
    params = {p.name: p for p in program.parameters}
    assert set(params) == {"username", "password", "invoice_date", "vendor", "category", "cost_centre"}
    assert (params["vendor"].type, params["vendor"].default) == ("text", "Acme Trading Co.")  # the last value
    assert (params["invoice_date"].type, params["invoice_date"].label) == ("date", "Invoice date")
    assert (params["category"].type, params["category"].choices) == ("choice", ["Travel"])
    assert (params["password"].type, params["password"].default) == ("secret", None)
    assert steps["select_category"].action == "select"
    # postconditions: a field's value after each edit, never for the password
    assert [c.kind for c in steps["type_vendor"].checks] == ["field_value"]
    assert steps["type_vendor"].checks[0].equals == ParamInput(param="vendor")
    assert steps["type_invoice_number"].checks[0].equals == BindingInput(binding="invoice_number")
    assert steps["type_password"].checks == []
    # the submit is sensitive; sign-in is not
    assert steps["click_submit_claim"].sensitive and not steps["click_sign_in"].sensitive
    # the claim number that appeared after the final click: checked, saved, and required at the end
    claim, *shown = steps["click_submit_claim"].checks
    assert (claim.kind, claim.save_as) == ("text_in_window", "claim_number")
    assert re2.fullmatch(claim.pattern, CLAIM_NUMBER) and re2.fullmatch(claim.pattern, "CLM-2027-9")
    assert not re2.search(claim.pattern, "INV-2026-0042")
    (final,) = program.final_checks
    assert (final.kind, final.equals) == ("text_in_window", BindingInput(binding="claim_number"))
    # what the confirmation shows back, each value as the amount or day it is (shown normalised), in
    # the order typed; the cost centre it does not show and the password are not checked
    assert [(c.kind, c.equals, c.compare_as) for c in shown] == [
        ("text_in_window", BindingInput(binding="invoice_number"), "text"),
        ("text_in_window", BindingInput(binding="amount"), "money"),
        ("text_in_window", ParamInput(param="invoice_date"), "date"),
        ("text_in_window", ParamInput(param="vendor"), "text"),
        ("text_in_window", ParamInput(param="category"), "text"),
    ]
    # the document round-trips through YAML unchanged
    assert from_yaml(to_yaml(program)) == program


def test_a_value_pasted_then_edited_is_a_parameter_not_a_binding() -> None:
    s = Script()
    title = portal_title("New claim")
    s.add(K.KIND_COPY, PORTAL, title, element=element(PORTAL, "text", "Note"), value="Taxi")
    field = element(PORTAL, "entry", "Purpose", ident="purpose")
    s.add(K.KIND_PASTE, PORTAL, title, element=field, value="Taxi")
    s.add(K.KIND_FIELD_VALUE, PORTAL, title, element=field, value="Taxi to the airport")
    program = compile_recording(s.actions, name="edited paste")
    assert [st.action for st in steps_of(program)] == ["focus", "type"]  # the unused copy is gone
    assert program.parameters[0].default == "Taxi to the airport"


def test_a_wait_becomes_the_next_steps_wait_for_its_target_never_a_sleep() -> None:
    s = Script()
    title = portal_title("New claim")
    s.add(K.KIND_CLICK, PORTAL, title, element=element(PORTAL, "push button", "Next"))
    s.add(K.KIND_WAIT, PORTAL, title, waited_ms=12_000)
    s.add(K.KIND_CLICK, PORTAL, title, element=element(PORTAL, "push button", "Upload"))
    program = compile_recording(s.actions, name="slow page")
    steps = steps_of(program)
    assert [st.action for st in steps] == ["focus", "click", "click"]
    assert steps[1].timeout_s == 15.0 and steps[2].timeout_s == 36.0
    assert "wait" not in {st.action for st in steps}


def test_the_weekly_report_becomes_a_loop_over_the_lines_of_the_text_file() -> None:
    script = weekly_report()
    program = compile_recording(script.actions, name="提报 weekly report", texts=script.texts)
    kinds = [type(e).__name__ + ":" + (e.action if isinstance(e, Step) else "loop") for e in program.steps]
    assert kinds == ["Step:focus", "Step:type", "Step:read", "Loop:loop", "Step:click"]
    read, loop = program.steps[2], program.steps[3]
    assert isinstance(read, Step) and isinstance(loop, Loop)
    assert read.target is not None and read.target.window.app_id == "mousepad" and read.pattern == ""
    assert loop.over == read.save_as == "item_lines"
    assert loop.fields == ["line"]
    rows = [
        m.group("line")
        for line in "\n".join(WEEK_LINES).split("\n")
        if (m := re2.match(loop.row_pattern, line))
    ]
    assert rows == WEEK_LINES and not re2.match(loop.row_pattern, "   ")
    body = {s.action: s for s in loop.steps}
    assert body["type"].input == ItemInput(item="line")
    assert body["type"].checks[0].equals == ItemInput(item="line")
    assert body["click"].target is not None and body["click"].target.name == "Add item"
    # The page listed each line once Add took it: the row's line, shown, is what proves the Add (and
    # what the next row waits for before typing into the page that replaced this one).
    assert body["click"].checks == [
        Check(kind="text_in_window", window=body["click"].target.window, equals=ItemInput(item="line"))
    ]
    send = program.steps[4]
    assert isinstance(send, Step) and send.sensitive
    assert [p.name for p in program.parameters] == ["week"]  # the lines are data, not parameters
    assert from_yaml(to_yaml(program)) == program


def test_an_add_whose_page_never_showed_the_row_gets_no_check_of_it() -> None:
    script = weekly_report(listed=False)
    program = compile_recording(script.actions, name="counted, not listed", texts=script.texts)
    (loop,) = [e for e in program.steps if isinstance(e, Loop)]
    (add,) = [s for s in loop.steps if s.action == "click"]
    assert add.checks == []


def test_one_copy_pasted_twice_is_no_loop() -> None:
    script = weekly_report(["Same line", "Same line"])
    program = compile_recording(script.actions, name="no loop")
    assert not any(isinstance(e, Loop) for e in program.steps)


def test_thumbnails_are_the_frames_nearest_each_step() -> None:
    script = expense_claim()
    frames = [FrameRef(r.time_ns + 1, f"frames/desk/{r.seq:012d}.png") for r in script.actions[::4]]
    program = compile_recording(script.actions, name="with frames", frames=frames)
    keys = {f.key for f in frames}
    assert all(step.thumbnail in keys for step in steps_of(program))
    assert len({step.thumbnail for step in steps_of(program)}) > 3


def test_zh_labels_fall_back_to_field_names_and_keep_the_label() -> None:
    s = Script()
    title = "报销系统 - Chromium"
    window = pb.WindowRef(window_id=5, app_id="chromium")
    s.add(K.KIND_FIELD_VALUE, window, title, element=element(window, "entry", "金额"), value="¥1,280.00")
    s.add(K.KIND_FIELD_VALUE, window, title, element=element(window, "entry", "日期"), value="2026年11月23日")
    s.add(K.KIND_CLICK, window, title, element=element(window, "push button", "提交"))
    program = compile_recording(s.actions, name="zh")
    assert [(p.name, p.type, p.label) for p in program.parameters] == [
        ("field_1", "money", "金额"),
        ("field_2", "date", "日期"),
    ]
    assert steps_of(program)[-1].sensitive


def test_a_recording_with_nothing_to_replay_is_refused() -> None:
    s = Script()
    s.add(K.KIND_STARTED, PORTAL, "x")
    s.add(K.KIND_FOCUS, PORTAL, "x")
    s.add(K.KIND_STOPPED, PORTAL, "x")
    try:
        compile_recording(s.actions, name="empty")
    except ValueError as exc:
        assert "no actions" in str(exc)
    else:
        raise AssertionError("compiled an empty recording")


def test_value_types_names_and_shapes() -> None:
    assert [infer_type(v) for v in ("¥1,280.00", "1,280", "$45", "98.5元", "1280.00")] == ["money"] * 5
    assert [infer_type(v) for v in ("2026-11-23", "2026/11/23", "2026年11月23日", "Nov 23 2026")] == [
        "date"
    ] * 4
    assert (infer_type("12"), infer_type("12", "Amount"), infer_type("Taxi")) == ("number", "money", "text")
    assert (snake_name("Invoice No."), snake_name("金额"), snake_name("2nd amount")) == (
        "invoice_no",
        "",
        "nd_amount",
    )
    assert shape_pattern("Reviewed 3 pull requests") == ""
    assert re2.fullmatch(shape_pattern("2026年11月23日"), "2027年1月5日")


def test_recorded_order_is_by_seq() -> None:
    script = expense_claim()
    shuffled = list(reversed(script.actions))
    assert compile_recording(shuffled, name="x") == compile_recording(script.actions, name="x")
    assert all(isinstance(r, Recorded) for r in shuffled)


def shown(pattern: str, text: str) -> str | None:
    match = re2.search(pattern, text)
    return match.group(1) if match else None


def test_rendering_patterns_find_the_same_amount_or_day_in_any_usual_rendering() -> None:
    money = rendering_pattern("1,280.50", "money")
    assert [shown(money, t) for t in ("Amount1280.50", "¥1,280.5 paid", "金额（含税）1280.50")] == [
        "1280.50",
        "1,280.5",
        "1280.50",
    ]
    # Never part of another number: not 11280.50, 1280.55 or 1280.505, nor the 80.50 of 1280.50.
    assert [shown(money, t) for t in ("11280.50", "1280.55", "1280.505", "")] == [None] * 4
    assert shown(rendering_pattern("80.50", "money"), "Total 1280.50") is None
    whole = rendering_pattern("¥35", "money")
    assert [shown(whole, t) for t in ("Tax35.00", "tax 35", "35.01", "135")] == ["35.00", "35", None, None]
    day = rendering_pattern("2026年01月05日", "date")
    found = [shown(day, t) for t in ("Invoice date2026-01-05", "2026/1/5", "Jan 5, 2026", "5 January 2026")]
    assert found == ["2026-01-05", "2026/1/5", "Jan 5, 2026", "5 January 2026"]
    assert [shown(day, t) for t in ("2026-01-15", "2026-11-05", "12026-01-05")] == [None] * 3
    assert shown(rendering_pattern("Nov 23 2026", "date"), "2026年11月23日") == "2026年11月23日"
    # Text, and a value that is not of its type, are compared as they are.
    assert rendering_pattern("Acme", "money") == rendering_pattern("CC-2040", "text") == ""
