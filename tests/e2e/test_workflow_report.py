"""The 提报 weekly report, recorded once by demonstration and replayed on other notes, end to end.

The desk (``harness.expense_desk``): ``shadowdesk server`` over real MinIO, ``shadowdesk agent``
(recorder, executor, accessibility sensor) on an Xvfb desktop with a session bus and AT-SPI, the expense
portal (its own SQLite) in a Chromium with ``--force-renderer-accessibility``, the week's notes (one
piece of work a line, Chinese and English) in mousepad. The person's recording and the runs are
``harness.weekly_report`` (``bench/workflow_bench.py`` counts the same runs).

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
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from harness.expense_desk import PORTAL_PASSWORD, ExpenseDesk, expense_desk, show, steps_of
from harness.macro_run import confirm_or_abort
from harness.minio import MinioServer
from harness.weekly_report import record_report, report_run, write_notes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
log = logging.getLogger(__name__)

USER = f"lin-{uuid.uuid4().hex[:8]}"
SESSION = "lin-desk-1"
# (seed, lines): the notes of the demonstration and of the replay (another week, one line more).
RECORDED_NOTES = (2, 3)
REPLAYED_NOTES = (3, 4)


@pytest.fixture(scope="module")
def desk(minio_server: MinioServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExpenseDesk]:
    with expense_desk(minio_server, tmp_path_factory.mktemp("report"), USER, SESSION) as running:
        yield running


@pytest.fixture(scope="module")
def macro(desk: ExpenseDesk) -> dict[str, Any]:
    """Record the weekly report once, as a person does it; the stopped recording's compiled macro."""
    notes = write_notes(desk.home / "notes-recorded.txt", *RECORDED_NOTES)
    assert notes.both_languages, notes
    return record_report(desk, notes)


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
    notes = write_notes(desk.home / "notes-replayed.txt", *REPLAYED_NOTES)
    week, lines = notes.week, notes.lines
    assert week != macro["week"] and len(lines) != len(macro["lines"]), notes
    assert notes.both_languages and set(lines) != set(macro["lines"]), notes
    program = macro["program"]
    before = desk.reports()
    asked: list[tuple[str, bool]] = []

    def person(run: dict[str, Any]) -> str:
        asked.append((run["question"]["kind"], desk.reports() == before))
        return confirm_or_abort(run)

    with desk.api() as api:
        result = report_run(desk, api, macro, notes, "replay", person)
        run = result.run
        # One question, the sensitive submit's, asked before anything was filed.
        assert asked == [("confirm", True)], show(run)
        assert run["status"] == "complete", show(run)
        usage = api.get("/v1/llm/usage").json()
        assert (usage["requests"], usage["embedded_texts"]) == (0, 0), usage
    new = result.filed
    assert len(new) == 1, [r.number for r in desk.reports()]
    assert (new[0].week, list(new[0].lines)) == (week, lines), show(run)
    assert result.filed_right and not result.false_completion
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
        "weekly report: demonstration %.1f s (%d lines), replay %.1f s (%d lines, less the confirm's wait)",
        macro["demonstration_s"],
        len(macro["lines"]),
        result.wall_s,
        len(lines),
    )
