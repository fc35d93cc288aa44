"""Workflow macros end to end: the 报销 claim and the 提报 weekly report, each recorded once by
demonstration, then replayed N times on new inputs.

Self-contained: it starts its own MinIO (``harness.minio``) and, for each macro, an expense desk
(``harness.expense_desk``) of its own (another user): ``shadowdesk server`` over that MinIO,
``shadowdesk agent`` (recorder, executor, accessibility sensor) on an Xvfb desktop with a session bus
and AT-SPI, the expense portal (its own SQLite) in a Chromium with ``--force-renderer-accessibility``,
the cost centre in mousepad; each invoice PDF in evince, each week's notes in a mousepad window of
their own. A person is played with xdotool.

1. **The demonstration**, recorded once through the recordings API, as a person does it. Its wall
   time, from the recording's start until the person has read the number the portal gives, is the
   person's time.

   * claim (``harness.expense_desk.record_claim``): look at the invoice, sign in, type what it says,
     copy the cost centre from mousepad, pick the category, submit, read the claim number. The user
     then lists the drop-down's other categories in the macro (a new version, as the editor would).
   * report (``harness.weekly_report.record_report``): sign in, type the week, copy each line of the
     notes (3 lines, Chinese and English) from mousepad into Item and Add item, submit, read the
     report number.
2. **N replays** on new inputs, each in a fresh signed-out Chromium through ``/v1/workflows/runs``;
   the bench confirms the sensitive submit at once and aborts any halt (nobody is there to help: a
   halted run is a failed run).

   * claim: new invoices (``make_invoice(1000 + i)``, zh and en in turn, layouts classic, modern and
     fapiao in turn). Filed right: exactly one claim, holding exactly the invoice's values.
   * report: new notes, 2, 3, 4, 5 lines in turn, Chinese and English lines in each, a week of their
     own (not the demonstration's, not another replay's). Filed right: exactly one report, for that
     week, holding exactly the notes' lines in order.
3. With ``--faults``, one run of the claim against each portal fault and with the agent killed mid-run
   (``harness.expense_faults``; what each must do is in its docstring and the e2e test).

Reported per macro: **step success** (tries that held / tries: every try of every step in the runs'
traces, loop rows and the final checks included; a retried step counts each try), **run success**
(complete / runs), **false completions** (a run reported complete whose record in the portal's
database is not filed right), **replay wall time** (from the run's creation to its end, less the
time its questions waited for the bench's answer) against the demonstration's in the same run,
**model calls per replay** (the user's LLM gateway requests and embedded texts, ``GET /v1/llm/usage``,
over all replays), and the **agent's CPU while running** (its user + system time over each run's wall
time, of one core, with ``bench.process_stats``).

Run: ``.venv/bin/python -m bench.workflow_bench --runs 20 --faults`` (both macros)
"""

from __future__ import annotations

import argparse
import functools
import itertools
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import psutil

from bench.process_stats import Usage, UsageMeter
from bench.report import command_line, fmt, markdown_table, percentile
from cloud_infer.workflows.program import from_yaml, to_yaml
from demo_apps.invoices import LANGUAGES, LAYOUTS, Invoice, make_invoice
from harness import expense_faults
from harness.expense_desk import OPTION_TEXT, ExpenseDesk, expense_desk, record_claim
from harness.expense_faults import ClaimRun
from harness.macro_run import MacroRun, confirm_or_abort
from harness.minio import MinioServer
from harness.weekly_report import WeeklyNotes, record_report, report_run, write_notes

logger = logging.getLogger(__name__)

MACROS = ("claim", "report")
RECORDED = make_invoice(101, "en", "classic")
RECORDED_NOTES = (2, 3)  # (seed, lines): the report's demonstration, as in its e2e test
WEEKS = 52  # write_weekly_notes draws a week of 2025
Scenario = Callable[[ExpenseDesk, httpx.Client, dict[str, Any], Invoice], ClaimRun]
FAULTS: dict[str, Scenario] = {
    "a field dropped on submit (tax)": expense_faults.dropped_field,
    "500 page on the submit, once": expense_faults.error_on_submit,
    "every page 2 s late": expense_faults.slow_portal,
    "modal notice on every form page": expense_faults.modal_notice,
    "agent SIGKILLed while typing and at the submit": expense_faults.agent_killed,
}


class Replay(Protocol):
    """One run of a macro to its end, calling ``on_progress`` at every poll of it."""

    def __call__(
        self, api: httpx.Client, *, on_progress: Callable[[dict[str, Any]], None]
    ) -> MacroRun[Any]: ...


@dataclass(frozen=True)
class Measured:
    run: MacroRun[Any]
    agent: Usage  # from the run's start until it ended
    agent_cpu_s: float


@dataclass
class Measurement:
    """One macro's figures: the person's time, the replays, the model calls over them, the faults."""

    macro: str
    demonstration_s: float
    replays: list[Measured] = field(default_factory=list)
    model_calls: tuple[int, int] = (0, 0)
    faults: list[tuple[str, ClaimRun]] = field(default_factory=list)


def invoice_for(index: int) -> Invoice:
    """Replay ``index``'s invoice: another seed, the languages and layouts in turn."""
    return make_invoice(1000 + index, LANGUAGES[index % len(LANGUAGES)], LAYOUTS[index % len(LAYOUTS)])


def notes_for(home: Path, runs: int, recorded_week: str) -> list[WeeklyNotes]:
    """Each replay's notes: 2 to 5 lines in turn, both languages in each, a week no other notes have
    (the first seeds from 1000 that draw them)."""
    if runs >= WEEKS:
        raise ValueError(f"at most {WEEKS - 1} replays of the report, each for a week of its own")
    weeks = {recorded_week}
    seeds = itertools.count(1000)
    notes = []
    for index in range(runs):
        path = home / f"notes-replay-{index + 1}.txt"
        drawn = write_notes(path, next(seeds), 2 + index % 4)
        while drawn.week in weeks or not drawn.both_languages:
            drawn = write_notes(path, next(seeds), len(drawn.lines))
        weeks.add(drawn.week)
        notes.append(drawn)
    return notes


def every_category(desk: ExpenseDesk, macro: dict[str, Any]) -> None:
    """The macro's category parameter with every entry of the drop-down (a new version)."""
    program = from_yaml(macro["document"])
    parameters = [
        p.model_copy(update={"choices": list(OPTION_TEXT.values())}) if p.type == "choice" else p
        for p in program.parameters
    ]
    with desk.api() as api:
        api.put(
            f"/v1/workflows/macros/{macro['macro_id']}",
            content=to_yaml(program.model_copy(update={"parameters": parameters})).encode(),
            headers={"content-type": "application/yaml"},
        ).raise_for_status()


def measured_replay(desk: ExpenseDesk, api: httpx.Client, replay: Replay) -> Measured:
    """One replay, with the agent's CPU and memory from the run's start (not while its apps open)."""
    agent = psutil.Process(desk.agent.pid)
    meter = UsageMeter([agent.pid, *(child.pid for child in agent.children(recursive=True))])
    started: list[float] = []

    def start_meter(run: dict[str, Any]) -> None:
        if not started:
            meter.start()
            started.append(time.monotonic())

    result = replay(api, on_progress=start_meter)
    usage = meter.stop()
    return Measured(result, usage, usage.cpu_percent / 100 * (time.monotonic() - started[0]))


def usage_total(desk: ExpenseDesk) -> tuple[int, int]:
    with desk.api() as api:
        usage = api.get("/v1/llm/usage").raise_for_status().json()
    return int(usage["requests"]), int(usage["embedded_texts"])


def replay_all(desk: ExpenseDesk, measurement: Measurement, replays: Sequence[Replay]) -> None:
    """Run each replay in turn into ``measurement``, with the model calls made meanwhile."""
    calls_before = usage_total(desk)
    with desk.api() as api:
        for index, replay in enumerate(replays):
            done = measured_replay(desk, api, replay)
            logger.info(
                "%s replay %d (%s): %s in %.1f s",
                measurement.macro,
                index + 1,
                done.run.case,
                done.run.run["status"],
                done.run.wall_s,
            )
            measurement.replays.append(done)
    calls = usage_total(desk)
    measurement.model_calls = (calls[0] - calls_before[0], calls[1] - calls_before[1])


def bench_claim(minio: MinioServer, work: Path, runs: int, with_faults: bool) -> Measurement:
    home = work / "claim"
    home.mkdir(parents=True, exist_ok=True)
    with expense_desk(minio, home, f"bench-{uuid.uuid4().hex[:8]}", "bench-claim-desk") as desk:
        macro = record_claim(desk, RECORDED)
        logger.info("claim recorded in %.1f s; replaying on %d invoices", macro["demonstration_s"], runs)
        every_category(desk, macro)
        measurement = Measurement("claim", macro["demonstration_s"])

        replays = [
            functools.partial(
                expense_faults.claim_run,
                desk,
                macro=macro,
                invoice=invoice_for(index),
                scenario="replay",
                person=confirm_or_abort,
            )
            for index in range(runs)
        ]
        replay_all(desk, measurement, replays)
        with desk.api() as api:
            measurement.faults = [
                (name, scenario(desk, api, macro, make_invoice(2000 + index)))
                for index, (name, scenario) in enumerate(FAULTS.items() if with_faults else ())
            ]
    return measurement


def bench_report(minio: MinioServer, work: Path, runs: int) -> Measurement:
    home = work / "report"
    home.mkdir(parents=True, exist_ok=True)
    with expense_desk(minio, home, f"bench-{uuid.uuid4().hex[:8]}", "bench-report-desk") as desk:
        macro = record_report(desk, write_notes(home / "notes-recorded.txt", *RECORDED_NOTES))
        logger.info("report recorded in %.1f s; replaying on %d notes", macro["demonstration_s"], runs)
        measurement = Measurement("report", macro["demonstration_s"])

        replays = [
            functools.partial(
                report_run, desk, macro=macro, notes=notes, scenario="replay", person=confirm_or_abort
            )
            for notes in notes_for(home, runs, macro["week"])
        ]
        replay_all(desk, measurement, replays)
    return measurement


def render_summary(measurement: Measurement) -> str:
    replays, n = measurement.replays, len(measurement.replays)
    runs = [m.run for m in replays]
    tries = [outcome for run in runs for outcome in run.tries]
    held = sum(outcome in ("ok", "taken_over") for outcome in tries)
    complete = sum(run.complete for run in runs)
    filed_right = f"{sum(run.filed_right for run in runs)} / {n}"
    walls = [run.wall_s for run in runs if run.complete]
    p50 = percentile(walls, 50)
    spread = (p50, percentile(walls, 95), max(walls, default=math.nan))
    cpu = [m.agent.cpu_percent for m in replays]
    cpu_s = [m.agent_cpu_s for m in replays]
    rss = max((m.agent.rss_max_mb for m in replays), default=math.nan)
    steps = f"{held} / {len(tries)} = {pct(held, len(tries))}"
    calls = f"{ratio(measurement.model_calls[0], n)}, {ratio(measurement.model_calls[1], n)}"
    cpu_shown = f"{fmt(mean(cpu), 1)} / {fmt(max(cpu, default=math.nan), 1)}"
    rows = [
        ["step success (tries that held / tries)", steps, "≥ 99.5 %"],
        ["run success (complete / runs)", f"{complete} / {n} = {pct(complete, n)}", "≥ 98 %"],
        ["false completions", str(sum(run.false_completion for run in runs)), "0"],
        [f"{measurement.macro}s filed exactly right, once", filed_right, ""],
        ["demonstration (the person) s", fmt(measurement.demonstration_s, 1), ""],
        ["replay wall s, complete runs: p50 / p95 / max", " / ".join(fmt(v, 1) for v in spread), ""],
        ["replay p50 / demonstration", fmt(p50 / measurement.demonstration_s, 2), "< 1"],
        ["model calls per replay: requests, embedded texts", calls, "0"],
        ["agent CPU % of one core while running: mean / max", cpu_shown, ""],
        ["agent CPU s per replay, mean", fmt(mean(cpu_s), 2), ""],
        ["agent RSS max MiB", fmt(rss, 1), ""],
    ]
    return markdown_table([f"replays of the recorded {measurement.macro}", "measured", "target"], rows)


def render_runs(measurement: Measurement) -> str:
    rows = [
        [
            str(index + 1),
            m.run.case,
            m.run.run["status"],
            f"{m.run.tries.count('ok')} / {len(m.run.tries)}",
            fmt(m.run.wall_s, 1),
            fmt(m.agent.cpu_percent, 1),
            "yes" if m.run.filed_right else f"no ({len(m.run.filed)} filed)",
        ]
        for index, m in enumerate(measurement.replays)
    ]
    given = "invoice" if measurement.macro == "claim" else "notes"
    header = ["#", given, "status", "tries ok", "wall s", "agent CPU %", "filed right, once"]
    return markdown_table(header, rows)


def render_faults(faults: Sequence[tuple[str, ClaimRun]]) -> str:
    rows = [
        [
            name,
            run.run["status"],
            "; ".join(f"{h['step_id']}: {h['reason'].split(': ', 1)[-1][:120]}" for h in run.halts) or "none",
            str(len(run.filed)),
            "yes" if run.filed_right else "no",
            "YES" if run.false_completion else "no",
        ]
        for name, run in faults
    ]
    header = ["fault", "status", "halts (step: why)", "claims filed", "filed right", "false completion"]
    return markdown_table(header, rows)


def render(measurement: Measurement) -> str:
    shown = f"{render_summary(measurement)}\n\n{render_runs(measurement)}\n"
    return shown + (f"\n{render_faults(measurement.faults)}\n" if measurement.faults else "")


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def ratio(part: int, whole: int) -> str:
    return f"{part / whole:g}" if whole else "n/a"


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.workflow_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--macro", choices=(*MACROS, "both"), default="both", help="the macro(s) to record and replay"
    )
    parser.add_argument("--runs", type=int, default=20, help="replays of each recorded macro on new inputs")
    parser.add_argument("--faults", action="store_true", help="also one run of the claim against each fault")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep MinIO data, logs and files here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.faults and args.macro == "report":
        parser.error("--faults runs the claim against the portal's faults: use --macro claim or both")
    if args.macro != "claim" and args.runs >= WEEKS:
        parser.error(f"the report's replays each need a week of their own: --runs below {WEEKS}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request
    load_before = os.getloadavg()[0]
    macros = MACROS if args.macro == "both" else (args.macro,)
    with tempfile.TemporaryDirectory(prefix="shadowdesk-workflow-bench-") as tmp:
        work: Path = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with MinioServer(work / "minio") as minio:
            measured = [
                bench_claim(minio, work, args.runs, args.faults)
                if macro == "claim"
                else bench_report(minio, work, args.runs)
                for macro in macros
            ]
    sys.stdout.write(
        f"\n{command_line('bench.workflow_bench', argv)}\n\n"
        f"{os.cpu_count()} cpus, load average {load_before:.2f} before the run; Xvfb 1280x900 + openbox, "
        "server over MinIO, agent, portal, Chromium, evince and mousepad on these cores\n\n"
        + "\n".join(render(measurement) for measurement in measured)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
