"""Workflow macros end to end: the 报销 claim recorded once by demonstration, then replayed on N invoices.

Self-contained: it starts its own MinIO (``harness.minio``) and the expense desk
(``harness.expense_desk``): ``shadowdesk server`` over that MinIO, ``shadowdesk agent`` (recorder,
executor, accessibility sensor) on an Xvfb desktop with a session bus and AT-SPI, the expense portal
(its own SQLite) in a Chromium with ``--force-renderer-accessibility``, each invoice PDF in evince, the
cost centre in mousepad. A person is played with xdotool.

1. **The demonstration**: the claim recorded once through the recordings API, as a person files it
   (look at the invoice, sign in, type what it says, copy the cost centre from mousepad, pick the
   category, submit, read the claim number). Its wall time, from the recording's start until the person
   has read the claim number, is the person's time.
2. The user lists the drop-down's other categories in the macro (a new version, as the editor would).
3. **N replays** on new invoices (``make_invoice(1000 + i)``, zh and en in turn, layouts classic,
   modern and fapiao in turn), each in a fresh signed-out Chromium through ``/v1/workflows/runs``
   (``harness.expense_faults.claim_run``): the bench confirms the submit at once and aborts any halt
   (nobody is there to help: a halted run is a failed run).
4. With ``--faults``, one run of each portal fault and of the agent killed mid-run
   (``harness.expense_faults``; what each must do is in its docstring and the e2e test).

Reported: **step success** (tries that held / tries: every try of every step in the runs' traces, the
final checks included; a retried step counts each try), **run success** (complete / runs), **false
completions** (a run reported complete whose claim in the portal's database is not exactly the
invoice's, or that filed none or two), **replay wall time** (from the run's creation to its end, less
the time its questions waited for the bench's answer) against the demonstration's in the same run,
**model calls per replay** (the user's LLM gateway requests and embedded texts, ``GET /v1/llm/usage``,
over all replays), and the **agent's CPU while running** (its user + system time over each run's wall
time, of one core, with ``bench.process_stats``).

Run: ``.venv/bin/python -m bench.workflow_bench --runs 20 --faults``
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.process_stats import Usage, UsageMeter
from bench.report import command_line, fmt, markdown_table, percentile
from cloud_infer.workflows.program import from_yaml, to_yaml
from demo_apps.invoices import LANGUAGES, LAYOUTS, Invoice, make_invoice
from harness import expense_faults
from harness.expense_desk import OPTION_TEXT, ExpenseDesk, expense_desk, record_claim
from harness.expense_faults import ClaimRun
from harness.minio import MinioServer

logger = logging.getLogger(__name__)

SESSION = "bench-desk-1"
RECORDED = make_invoice(101, "en", "classic")
Scenario = Callable[[ExpenseDesk, httpx.Client, dict[str, Any], Invoice], ClaimRun]
FAULTS: dict[str, Scenario] = {
    "a field dropped on submit (tax)": expense_faults.dropped_field,
    "500 page on the submit, once": expense_faults.error_on_submit,
    "every page 2 s late": expense_faults.slow_portal,
    "modal notice on every form page": expense_faults.modal_notice,
    "agent SIGKILLed while typing and at the submit": expense_faults.agent_killed,
}


@dataclass(frozen=True)
class Measured:
    run: ClaimRun
    agent: Usage  # from the run's start until it ended
    agent_cpu_s: float


def invoice_for(index: int) -> Invoice:
    """Replay ``index``'s invoice: another seed, the languages and layouts in turn."""
    return make_invoice(1000 + index, LANGUAGES[index % len(LANGUAGES)], LAYOUTS[index % len(LAYOUTS)])


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


def measured_replay(
    desk: ExpenseDesk, api: httpx.Client, macro: dict[str, Any], invoice: Invoice
) -> Measured:
    """One replay, with the agent's CPU and memory from the run's start (not while its apps open)."""
    agent = psutil.Process(desk.agent.pid)
    meter = UsageMeter([agent.pid, *(child.pid for child in agent.children(recursive=True))])
    started: list[float] = []

    def start_meter(run: dict[str, Any]) -> None:
        if not started:
            meter.start()
            started.append(time.monotonic())

    result = expense_faults.claim_run(
        desk, api, macro, invoice, "replay", expense_faults.confirm_or_abort, on_progress=start_meter
    )
    usage = meter.stop()
    return Measured(result, usage, usage.cpu_percent / 100 * (time.monotonic() - started[0]))


def usage_total(desk: ExpenseDesk) -> tuple[int, int]:
    with desk.api() as api:
        usage = api.get("/v1/llm/usage").raise_for_status().json()
    return int(usage["requests"]), int(usage["embedded_texts"])


def render_summary(demonstration_s: float, replays: Sequence[Measured], model_calls: tuple[int, int]) -> str:
    runs = [m.run for m in replays]
    n = len(runs)
    tries = [outcome for run in runs for outcome in run.tries]
    held = sum(outcome in ("ok", "taken_over") for outcome in tries)
    complete = sum(run.complete for run in runs)
    walls = [run.wall_s for run in runs if run.complete]
    p50 = percentile(walls, 50)
    spread = (p50, percentile(walls, 95), max(walls, default=math.nan))
    cpu = [m.agent.cpu_percent for m in replays]
    cpu_s = [m.agent_cpu_s for m in replays]
    rss = max((m.agent.rss_max_mb for m in replays), default=math.nan)
    steps = f"{held} / {len(tries)} = {pct(held, len(tries))}"
    calls = f"{ratio(model_calls[0], n)}, {ratio(model_calls[1], n)}"
    cpu_shown = f"{fmt(mean(cpu), 1)} / {fmt(max(cpu, default=math.nan), 1)}"
    rows = [
        ["step success (tries that held / tries)", steps, "≥ 99.5 %"],
        ["run success (complete / runs)", f"{complete} / {n} = {pct(complete, n)}", "≥ 98 %"],
        ["false completions", str(sum(run.false_completion for run in runs)), "0"],
        ["claims filed exactly right, once", f"{sum(run.filed_right for run in runs)} / {n}", ""],
        ["demonstration (the person) s", fmt(demonstration_s, 1), ""],
        ["replay wall s, complete runs: p50 / p95 / max", " / ".join(fmt(v, 1) for v in spread), ""],
        ["replay p50 / demonstration", fmt(p50 / demonstration_s, 2), "< 1"],
        ["model calls per replay: requests, embedded texts", calls, "0"],
        ["agent CPU % of one core while running: mean / max", cpu_shown, ""],
        ["agent CPU s per replay, mean", fmt(mean(cpu_s), 2), ""],
        ["agent RSS max MiB", fmt(rss, 1), ""],
    ]
    return markdown_table(["replays of the recorded claim", "measured", "target"], rows)


def render_runs(replays: Sequence[Measured]) -> str:
    rows = [
        [
            str(index + 1),
            f"{m.run.invoice.language} {m.run.invoice.layout}",
            m.run.run["status"],
            f"{m.run.tries.count('ok')} / {len(m.run.tries)}",
            fmt(m.run.wall_s, 1),
            fmt(m.agent.cpu_percent, 1),
            "yes" if m.run.filed_right else f"no ({len(m.run.filed)} filed)",
        ]
        for index, m in enumerate(replays)
    ]
    header = ["#", "invoice", "status", "tries ok", "wall s", "agent CPU %", "filed right, once"]
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
    parser.add_argument("--runs", type=int, default=20, help="replays of the recorded macro on new invoices")
    parser.add_argument("--faults", action="store_true", help="also one run of each fault")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep MinIO data, logs and files here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="shadowdesk-workflow-bench-") as tmp:
        work: Path = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        user = f"bench-{uuid.uuid4().hex[:8]}"
        with MinioServer(work / "minio") as minio, expense_desk(minio, work, user, SESSION) as desk:
            macro = record_claim(desk, RECORDED)
            logger.info("recorded in %.1f s; replaying on %d invoices", macro["demonstration_s"], args.runs)
            every_category(desk, macro)
            calls_before = usage_total(desk)
            replays: list[Measured] = []
            with desk.api() as api:
                for index in range(args.runs):
                    invoice = invoice_for(index)
                    done = measured_replay(desk, api, macro, invoice)
                    logger.info("replay %d: %s in %.1f s", index + 1, done.run.run["status"], done.run.wall_s)
                    replays.append(done)
                calls = usage_total(desk)
                model_calls = (calls[0] - calls_before[0], calls[1] - calls_before[1])
                faults = [
                    (name, scenario(desk, api, macro, make_invoice(2000 + index)))
                    for index, (name, scenario) in enumerate(FAULTS.items() if args.faults else ())
                ]
    sys.stdout.write(
        f"\n{command_line('bench.workflow_bench', argv)}\n\n"
        f"{os.cpu_count()} cpus, load average {load_before:.2f} before the run; Xvfb 1280x900 + openbox, "
        "server over MinIO, agent, portal, Chromium, evince and mousepad on these cores\n\n"
        f"{render_summary(macro['demonstration_s'], replays, model_calls)}\n\n{render_runs(replays)}\n"
        + (f"\n{render_faults(faults)}\n" if faults else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
