"""The 提报 weekly report, recorded once by demonstration and replayed on other notes, end to end.

The desk (``harness.expense_desk``): ``shadowdesk server`` over real MinIO, ``shadowdesk agent``
(recorder, executor, accessibility sensor) on an Xvfb desktop with a session bus and AT-SPI, the expense
portal (its own SQLite) in a Chromium with ``--force-renderer-accessibility``, the week's notes (one
piece of work a line, Chinese and English) in mousepad.

1. Recording: ``POST /v1/workflows/recordings``, then a person's mouse and keyboard (xdotool): sign in
   on the weekly report, type the week, then for each line of the notes: in mousepad Home, shift+End,
   ctrl+c, Down; in Chromium click Item, ctrl+v, click Add item; finally Submit report and see the
   report number; stop. The compiled macro has a week parameter and a Loop over the lines read from
   mousepad (typed into the one Item field, each Add checked by the line the page then lists).
2. Replay: ``POST /v1/workflows/runs`` of that macro on notes with another number of lines and a new
   week, in a fresh signed-out Chromium; the sensitive submit is confirmed through the answer API. The
   portal's database holds exactly those lines in order, filed once, the run is complete only once the
   report number was read back, and no model call is made.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from jeepney import DBusErrorResponse

from demo_apps.texts import write_weekly_notes
from harness.expense_desk import (
    PORTAL_PASSWORD,
    ExpenseDesk,
    answer,
    entry,
    expense_desk,
    show,
    sign_in,
    start_recording,
    steps_of,
    stop_recording,
    until_known,
    wait_run,
)
from harness.minio import MinioServer
from harness.processes import wait_until
from session_agent.errors import ActionFailedError

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
log = logging.getLogger(__name__)

USER = f"lin-{uuid.uuid4().hex[:8]}"
SESSION = "lin-desk-1"
# (seed, lines): the notes of the demonstration and of the replay (another week, one line more).
RECORDED_NOTES = (2, 3)
REPLAYED_NOTES = (3, 4)
ITEM = entry("Item / 事项")


def item_emptied(desk: ExpenseDesk) -> bool:
    """The new page's item field is empty (while the page is replaced it may be missing a moment)."""
    try:
        return desk.value(ITEM) == ""
    except (ActionFailedError, DBusErrorResponse):
        return False


def both_languages(lines: list[str]) -> bool:
    return any(line.isascii() for line in lines) and any(not line.isascii() for line in lines)


@pytest.fixture(scope="module")
def desk(minio_server: MinioServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExpenseDesk]:
    with expense_desk(minio_server, tmp_path_factory.mktemp("report"), USER, SESSION) as running:
        yield running


@pytest.fixture(scope="module")
def macro(desk: ExpenseDesk) -> dict[str, Any]:
    """Record the weekly report once, as a person does it; the stopped recording's compiled macro."""
    notes = desk.home / "notes-recorded.txt"
    week, lines = write_weekly_notes(notes, *RECORDED_NOTES)
    assert both_languages(lines), lines
    editor = desk.open_notes(notes)
    desk.open_portal("/reports/new")
    with desk.api() as api:
        recording_id = start_recording(desk, api)
        began = time.monotonic()
        sign_in(desk, "Weekly report")
        time.sleep(1.0)
        desk.fill(entry("Week / 周次"), week)
        for line in lines:
            # The line under the caret, copied in mousepad; the caret moves on to the next one.
            desk.desktop.activate(editor)
            time.sleep(0.5)
            for keys in ("Home", "shift+End", "ctrl+c"):
                desk.xdotool("key", keys)
            time.sleep(1.5)  # the time a person takes; the agent reads the copy's source element meanwhile
            desk.xdotool("key", "Down")
            desk.desktop.activate(desk.wait_page("Weekly report"))
            time.sleep(0.5)
            desk.click(ITEM)
            desk.xdotool("key", "ctrl+v")
            time.sleep(0.3)
            assert desk.value(ITEM) == line
            desk.click(entry("Add item / 添加一项", "push button"))
            # The page comes back listing the line, its item field empty again.
            wait_until(lambda: item_emptied(desk), 30, f"the portal to add {line!r}")
        desk.click(entry("Submit report / 提交周报", "push button"))
        wait_until(desk.reports, 30, "the report in the portal's database")
        (filed,) = desk.reports()
        desk.wait_page(f"Report {filed.number} submitted")
        time.sleep(2.5)  # the person reads the report number
        demonstration_s = time.monotonic() - began
        assert (filed.week, list(filed.lines)) == (week, lines)
        result = stop_recording(desk, api, recording_id, "提报 weekly report")
    result.update(recorded=filed, week=week, lines=lines, demonstration_s=demonstration_s)
    return result


def test_the_recorded_report_compiles_to_a_week_parameter_and_a_loop_over_the_notes(
    macro: dict[str, Any],
) -> None:
    program, shown = macro["program"], macro["document"]
    params = {p["label"].split(" / ")[0]: p for p in program.get("parameters", [])}
    # Typed: the user name, the password (a secret) and the week; the lines are data, not parameters.
    assert set(params) == {"User name", "Password", "Week"}, shown
    assert params["Week"]["default"] == macro["week"] and params["Password"]["type"] == "secret", shown
    assert PORTAL_PASSWORD not in shown and not any(line in shown for line in macro["lines"]), shown
    loops = [e for e in program["steps"] if "over" in e]
    assert len(loops) == 1, shown
    (loop,) = loops
    # The loop's lines are read from mousepad (the whole note, once) before it.
    reads = [s for s in steps_of(program) if s.get("action") == "read"]
    assert len(reads) == 1, shown
    read = reads[0]
    assert read["target"]["window"]["app_id"] == "mousepad" and read["save_as"] == loop["over"], shown
    assert program["steps"].index(read) == program["steps"].index(loop) - 1, shown
    # Per line: the one Item field typed from the row, checked, then Add, checked by the line listed.
    body = {s["action"]: s for s in loop["steps"]}
    assert body["type"]["target"]["id_attribute"] == "item", shown
    assert body["type"]["input"] == {"item": "line"}, shown
    assert [c["equals"] for c in body["type"]["checks"]] == [{"item": "line"}], shown
    assert body["click"]["target"]["name"] == "Add item / 添加一项", shown
    assert {"kind": "text_in_window", "equals": {"item": "line"}} in [
        {k: c[k] for k in ("kind", "equals") if k in c} for c in body["click"]["checks"]
    ], shown
    outside = [s for s in program["steps"] if "over" not in s]
    assert not any(s.get("target", {}).get("id_attribute") == "item" for s in outside), shown
    # The submit: sensitive, after the loop, checked by the report number it shows, required at the end.
    sensitive = [s for s in steps_of(program) if s.get("sensitive")]
    assert len(sensitive) == 1 and sensitive[0] is program["steps"][-1], shown
    assert sensitive[0]["target"]["name"] == "Submit report / 提交周报", shown
    (number_check,) = [c for c in sensitive[0].get("checks", []) if c.get("save_as")]
    assert number_check["kind"] == "text_in_window" and number_check["pattern"].startswith("WR"), shown
    assert program["final_checks"][0]["equals"] == {"binding": number_check["save_as"]}, shown


def test_the_macro_files_other_notes_exactly_once_line_by_line(
    desk: ExpenseDesk, macro: dict[str, Any]
) -> None:
    notes = desk.home / "notes-replayed.txt"
    week, lines = write_weekly_notes(notes, *REPLAYED_NOTES)
    assert week != macro["week"] and len(lines) != len(macro["lines"]), (week, lines)
    assert both_languages(lines) and set(lines) != set(macro["lines"]), lines
    program = macro["program"]
    week_param = next(p["name"] for p in program["parameters"] if p["label"].startswith("Week"))
    secret = next(p["name"] for p in program["parameters"] if p.get("type") == "secret")
    parameters = {p["name"]: p["default"] for p in program["parameters"] if "default" in p}
    before = desk.reports()
    desk.open_notes(notes)
    desk.open_portal("/reports/new")
    with desk.api() as api:
        began = time.monotonic()
        started = until_known(
            lambda: api.post(
                "/v1/workflows/runs",
                json={
                    "macro_id": macro["macro_id"],
                    "session_id": desk.session,
                    "parameters": {**parameters, week_param: week},
                    "secrets": {secret: PORTAL_PASSWORD},
                },
            )
        )
        assert started.status_code == 200, started.text
        run_id = started.json()["run_id"]
        asked = wait_run(desk, api, run_id, "waiting", "failed", "aborted", "complete")
        assert asked["status"] == "waiting" and asked["question"]["kind"] == "confirm", show(asked)
        assert desk.reports() == before, "nothing is filed before the user confirms"
        answer(api, asked, "confirm")
        run = wait_run(desk, api, run_id, "complete", "failed", "aborted", "waiting")
        replay_s = time.monotonic() - began
        assert run["status"] == "complete", show(run)
        usage = api.get("/v1/llm/usage").json()
        assert (usage["requests"], usage["embedded_texts"]) == (0, 0), usage
    new = [r for r in desk.reports() if r.number not in {b.number for b in before}]
    assert len(new) == 1, [r.number for r in desk.reports()]
    assert (new[0].week, list(new[0].lines)) == (week, lines), show(run)
    # Complete only once the report number the portal showed was read back: it is the one filed.
    (number_check,) = [c for c in steps_of(program)[-1]["checks"] if c.get("save_as")]
    assert run["bindings"][number_check["save_as"]] == new[0].number, show(run)
    final = [s for s in run["steps"] if s["step_id"] == "final_checks"]
    assert final and final[-1]["outcome"] == "ok", show(run)
    # Every line went through the loop once, in order: one successful Add per row.
    (loop,) = [e for e in program["steps"] if "over" in e]
    add = next(s["id"] for s in loop["steps"] if s["action"] == "click")
    rows = [s["row"] for s in run["steps"] if s["step_id"] == add and s["outcome"] == "ok"]
    assert rows == list(range(len(lines))), show(run)
    numbers = [r.number for r in desk.reports()]
    assert len(numbers) == len(set(numbers)) == 2
    log.info(
        "weekly report: demonstration %.1f s (%d lines), replay %.1f s (%d lines, confirm included)",
        macro["demonstration_s"],
        len(macro["lines"]),
        replay_s,
        len(lines),
    )
