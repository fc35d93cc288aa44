"""The 提报 weekly report on the expense desk: recorded once by demonstration, run on other notes.

Shared by ``tests/e2e/test_workflow_report.py`` (which asserts what the compiled macro holds and what a
run must do) and ``bench/workflow_bench.py`` (which counts the runs). The week's notes (one piece of
work a line, Chinese and English, ``demo_apps.texts.write_weekly_notes``) are in a mousepad window of
their own.

* :func:`record_report` is the demonstration, a person's mouse and keyboard (xdotool) while the
  recordings API records: sign in on the weekly report, type the week, then for each line of the notes:
  in mousepad Home, shift+End, ctrl+c, Down; in Chromium click Item, ctrl+v, click Add item; finally
  Submit report and read the report number.
* :func:`report_run` runs the compiled macro (its week parameter, a loop over the lines it reads from
  mousepad) on other notes in a fresh signed-out Chromium through ``/v1/workflows/runs``; a person
  answers its questions. A run is filed right when the portal's database holds exactly the notes'
  lines, in order, for their week, filed once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from jeepney import DBusErrorResponse

from demo_apps.expense_portal import Report
from demo_apps.texts import write_weekly_notes
from harness.expense_desk import (
    PORTAL_PASSWORD,
    ExpenseDesk,
    entry,
    sign_in,
    start_recording,
    stop_recording,
    until_known,
)
from harness.macro_run import Filed, MacroRun, Person, follow_run
from harness.processes import wait_until
from session_agent.errors import ActionFailedError

ITEM = entry("Item / 事项")


@dataclass(frozen=True)
class WeeklyNotes:
    """A notes file on the desk: the week it is for and its lines, in order."""

    path: Path
    week: str
    lines: list[str]

    @property
    def both_languages(self) -> bool:
        return any(line.isascii() for line in self.lines) and any(not line.isascii() for line in self.lines)


def write_notes(path: Path, seed: int, count: int) -> WeeklyNotes:
    """``count`` lines of work, and the week they are for, drawn from ``seed`` and written to ``path``."""
    week, lines = write_weekly_notes(path, seed, count)
    return WeeklyNotes(path, week, lines)


@dataclass
class ReportRun(MacroRun[Report]):
    """One run of the macro on one week's notes."""

    notes: WeeklyNotes

    @property
    def case(self) -> str:
        languages = "zh+en" if self.notes.both_languages else "en" if self.notes.lines[0].isascii() else "zh"
        return f"{self.notes.week}, {len(self.notes.lines)} lines {languages}"

    @property
    def filed_right(self) -> bool:
        """Exactly one report filed, for the notes' week, holding their lines in order."""
        return len(self.filed) == 1 and (self.filed[0].week, list(self.filed[0].lines)) == (
            self.notes.week,
            self.notes.lines,
        )


def item_emptied(desk: ExpenseDesk) -> bool:
    """The new page's item field is empty (while the page is replaced it may be missing a moment)."""
    try:
        return desk.value(ITEM) == ""
    except (ActionFailedError, DBusErrorResponse):
        return False


def record_report(desk: ExpenseDesk, notes: WeeklyNotes) -> dict[str, Any]:
    """Record the weekly report once, as a person does it: the stopped recording's compiled macro, with
    the report it filed (``recorded``), the notes' ``week`` and ``lines``, and the demonstration's wall
    time (``demonstration_s``, from the recording's start until the person has read the report number)."""
    editor = desk.open_notes(notes.path)
    desk.open_portal("/reports/new")
    with desk.api() as api:
        recording_id = start_recording(desk, api)
        began = time.monotonic()
        sign_in(desk, "Weekly report")
        time.sleep(1.0)
        desk.fill(entry("Week / 周次"), notes.week)
        for line in notes.lines:
            # The line under the caret, copied in mousepad; the caret moves on to the next one.
            desk.copy_line(editor, line, ("Home", "shift+End"))
            time.sleep(1.0)  # the time a person takes; the agent reads the copy's source element meanwhile
            desk.xdotool("key", "Down")
            desk.desktop.activate(desk.wait_page("Weekly report"))
            time.sleep(0.5)
            desk.click(ITEM)
            desk.xdotool("key", "ctrl+v")
            time.sleep(0.3)
            pasted = desk.value(ITEM)
            if pasted != line:
                raise AssertionError(f"pasted {pasted!r}, not the notes' line {line!r}")
            desk.click(entry("Add item / 添加一项", "push button"))
            # The page comes back listing the line, its item field empty again.
            wait_until(lambda: item_emptied(desk), 30, f"the portal to add {line!r}")
        desk.click(entry("Submit report / 提交周报", "push button"))
        wait_until(desk.reports, 30, "the report in the portal's database")
        (filed,) = desk.reports()
        desk.wait_page(f"Report {filed.number} submitted")
        time.sleep(2.5)  # the person reads the report number
        demonstration_s = time.monotonic() - began
        if (filed.week, list(filed.lines)) != (notes.week, notes.lines):
            raise AssertionError(f"the demonstration filed {filed}, not {notes}")
        result = stop_recording(desk, api, recording_id, "提报 weekly report")
    result.update(recorded=filed, week=notes.week, lines=notes.lines, demonstration_s=demonstration_s)
    return result


def start_report_run(desk: ExpenseDesk, api: httpx.Client, macro: dict[str, Any], week: str) -> str:
    """Start the macro for ``week`` (the password as the run's secret, the rest as recorded); its id."""
    program = macro["program"]
    week_param = next(p["name"] for p in program["parameters"] if p["label"].startswith("Week"))
    secret = next(p["name"] for p in program["parameters"] if p.get("type") == "secret")
    parameters = {p["name"]: p["default"] for p in program["parameters"] if "default" in p}
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
    if started.status_code != 200:
        raise AssertionError(f"the run did not start: {started.status_code} {started.text}")
    run_id: str = started.json()["run_id"]
    return run_id


def report_run(
    desk: ExpenseDesk,
    api: httpx.Client,
    macro: dict[str, Any],
    notes: WeeklyNotes,
    scenario: str,
    person: Person,
    *,
    on_progress: Callable[[dict[str, Any]], None] = lambda run: None,
) -> ReportRun:
    """Run the macro on ``notes`` (opened in mousepad, the caret at their start) in a fresh signed-out
    Chromium until it ends; ``person`` answers each question, ``on_progress`` sees every poll."""
    filed = Filed(desk.reports)
    desk.open_notes(notes.path)
    desk.open_portal("/reports/new")
    result = ReportRun(scenario, notes)
    run_id = start_report_run(desk, api, macro, notes.week)
    follow_run(desk, api, run_id, result, person, on_progress=on_progress)
    result.filed = filed()
    return result
