"""Replay a macro N times through a running server and report step success, run success and wall time.

A skeleton: it drives ``/v1/workflows/runs`` of a server that is already up (``scripts/demo.sh``, or the
processes a test starts) on a desktop whose agent is connected, confirms every sensitive step, and
aborts a run at its first halt (a halt is a failed run here: nobody is there to answer). What it
measures, per run: each try's outcome (step success = tries that held / tries), the final status
(run success = complete / runs), the replay's wall time without the time spent waiting for answers,
and the user's LLM gateway requests before and after (the target is zero). A false completion needs an
oracle of what was really filed (the expense portal's database): ``--oracle`` names a URL that answers
how many claims were filed, compared with the complete runs.

    .venv/bin/python -m bench.workflow_bench --server http://127.0.0.1:8080 --token "$TOKEN" \\
        --session desk-1 --program macro.yaml --runs 20 --param amount=42.50 --param category=Meals
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

_FINAL = ("complete", "failed", "aborted", "cancelled")


def _wait(api: httpx.Client, run_id: str, timeout_s: float) -> tuple[dict[str, Any], float]:
    """The run once final, and the seconds it spent waiting for answers (confirmations)."""
    deadline = time.monotonic() + timeout_s
    waited = 0.0
    while time.monotonic() < deadline:
        run: dict[str, Any] = api.get(f"/v1/workflows/runs/{run_id}").raise_for_status().json()
        if run["status"] in _FINAL:
            return run, waited
        question = run["question"]
        if run["status"] == "waiting" and question is not None:
            decision = "confirm" if question["kind"] == "confirm" else "abort"
            asked = time.monotonic()
            api.post(
                f"/v1/workflows/runs/{run_id}/answer",
                json={"decision": decision, "question_id": question["question_id"]},
            ).raise_for_status()
            waited += time.monotonic() - asked
            continue
        time.sleep(0.1)
    raise TimeoutError(f"run {run_id} did not finish within {timeout_s} s")


def _filed(oracle: str | None) -> int | None:
    if not oracle:
        return None
    return int(httpx.get(oracle, timeout=10).raise_for_status().json()["count"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--token", required=True, help="a read+manage token of the desktop's user")
    parser.add_argument("--session", required=True)
    parser.add_argument("--program", type=Path, help="a program document (YAML)")
    parser.add_argument("--macro-id", help="a stored macro instead of --program")
    parser.add_argument("--param", action="append", default=[], help="name=value, repeatable")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--oracle", help="URL answering {'count': claims filed so far}")
    args = parser.parse_args(argv)
    body: dict[str, Any] = {
        "session_id": args.session,
        "parameters": dict(item.split("=", 1) for item in args.param),
    }
    if args.program is not None:
        body["program"] = yaml.safe_load(args.program.read_text(encoding="utf-8"))
    else:
        body["macro_id"] = args.macro_id
    headers = {"Authorization": f"Bearer {args.token}"}
    results = []
    with httpx.Client(base_url=args.server, headers=headers, timeout=30) as api:
        usage_before = api.get("/v1/llm/usage").raise_for_status().json()
        filed_before = _filed(args.oracle)
        for _ in range(args.runs):
            started = api.post("/v1/workflows/runs", json=body).raise_for_status().json()
            run, waited = _wait(api, started["run_id"], args.timeout_s)
            wall_s = (run["finished_ns"] - run["created_ns"]) / 1e9 - waited
            tries = [step["outcome"] for step in run["steps"]]
            results.append({"status": run["status"], "wall_s": wall_s, "tries": tries})
        usage_after = api.get("/v1/llm/usage").raise_for_status().json()
        filed_after = _filed(args.oracle)
    tries = [outcome for result in results for outcome in result["tries"]]
    complete = [result for result in results if result["status"] == "complete"]
    report = {
        "runs": len(results),
        "run_success": len(complete) / len(results) if results else 0.0,
        "step_success": sum(o in ("ok", "taken_over") for o in tries) / len(tries) if tries else 0.0,
        "replay_wall_s_median": statistics.median(r["wall_s"] for r in complete) if complete else None,
        "llm_requests": usage_after["requests"] - usage_before["requests"],
        "false_completions": (
            max(0, len(complete) - (filed_after - filed_before))
            if filed_before is not None and filed_after is not None
            else None
        ),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if report["run_success"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
