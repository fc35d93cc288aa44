"""The benchmark commands still run end to end (tiny sizes): numbers are the bench's job, not the test's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.workflow_bench import notes_for
from harness.minio import MinioServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _run(module: str, *args: str, timeout_s: float = 240) -> str:
    result = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout_s
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _table_rows(output: str) -> list[list[str]]:
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


def test_ingest_bench_acknowledges_events_from_every_agent(minio_server: MinioServer) -> None:
    # The bench starts its own MinIO from the binary the session fixture made sure exists.
    output = _run(
        "bench.ingest_bench",
        *("--agents", "3", "--seconds", "2", "--load-fractions", "0.5"),
        *("--no-pin", "--client-procs", "1", "--ack-timeout", "20"),
    )
    rows = _table_rows(output)
    assert [(row[0], row[1]) for row in rows] == [("3", "max"), ("3", "paced 50%")]
    for row in rows:
        assert _number(row[4]) > 0, row  # acked events/s
        assert row[-1] == "0", row  # errors
    assert re.search(r"^\.venv/bin/python -m bench\.ingest_bench --agents 3 ", output, re.MULTILINE)


def test_agent_overhead_bench_measures_the_real_agent() -> None:
    output = _run("bench.agent_overhead_bench", "--seconds", "3", "--warmup", "1", "--no-chromium")
    rows = {row[0]: row for row in _table_rows(output)}
    assert set(rows) == {"idle", "busy"}
    for row in rows.values():
        assert 0 <= _number(row[2]) < 100, row  # agent CPU %, of one core
        assert _number(row[3]) > 10, row  # RSS mean MiB: a live Python process
    busy = rows["busy"]
    assert _number(busy[2]) > 0, busy  # switching windows and typing costs the agent something
    assert int(busy[9]) >= 1, busy  # and it saw the focus change


def test_recall_latency_bench_searches_a_small_indexed_corpus(tmp_path: Path) -> None:
    small = ("--sizes", "2000", "--queries", "10", "--warmup", "2", "--vector-index-min-rows", "1000")
    output = _run("bench.recall_latency_bench", *small, "--work-dir", str(tmp_path))
    build, *searches = _table_rows(output)
    assert build[0] == "2,000", build
    # Every product index exists and covers every row (optimize folded the later rows in): the app
    # and embedding-model bitmaps, the time and moment B-trees, full text and vectors.
    assert build[6] == (
        "BITMAP 2,000 indexed + 0 flat; BITMAP 2,000 indexed + 0 flat; BTREE 2,000 indexed + 0 flat; "
        "BTREE 2,000 indexed + 0 flat; FTS 2,000 indexed + 0 flat; IVF_PQ 2,000 indexed + 0 flat"
    ), build
    kinds = [(row[1], row[2], row[3]) for row in searches[1:]]  # [0] is the second table's header
    cores = str(len(os.sched_getaffinity(0)))
    assert kinds == [
        ("lexical", "7 days + app", "1"),
        ("vector", "7 days + app", "1"),
        ("hybrid", "7 days + app", "1"),
        ("hybrid", "none", "1"),
        ("embed, then hybrid", "7 days + app", "1"),  # the baseline: one after the other
        ("hybrid + query embedding", "7 days + app", "1"),  # the target's mode, as the product searches
        ("embed, then hybrid", "7 days + app", cores),
        ("hybrid + query embedding", "7 days + app", cores),
    ]
    for row in searches[1:]:
        assert row[4] == "10", row
        assert 0 < _number(row[5]) <= _number(row[6]) <= _number(row[7]), row  # p50 <= p95 <= p99
    lexical, _, hybrid, unfiltered, sequential, embedded, *_ = searches[1:]
    assert _number(lexical[8]) > 0 and _number(embedded[8]) > 0, lexical  # filtered queries find rows
    assert _number(hybrid[8]) >= _number(lexical[8]), hybrid
    # The same searches whether the query is embedded first or while the lexical side runs.
    assert embedded[8] == sequential[8] == hybrid[8], (embedded, sequential, hybrid)
    assert _number(unfiltered[8]) == 50, unfiltered  # the product's candidates limit
    assert "at 1,000,000 rows — not run" in output
    assert re.search(r"^\.venv/bin/python -m bench\.recall_latency_bench --sizes 2000 ", output, re.MULTILINE)
    # Measured again on the table the first run left: nothing is built, the same rows are found.
    again = _run("bench.recall_latency_bench", *small, "--work-dir", str(tmp_path), "--reuse")
    rebuilt, *searched = _table_rows(again)
    assert rebuilt[:5] == ["2,000", build[1], "n/a", "n/a", "n/a"] and rebuilt[6] == build[6], rebuilt
    assert [row[8] for row in searched[1:]] == [row[8] for row in searches[1:]], searched


def test_llm_gateway_bench_streams_through_the_gateway_and_the_backend() -> None:
    output = _run(
        "bench.llm_gateway_bench",
        *("--backend", "embedded", "--concurrency", "1", "2", "--rounds", "1"),
        *("--output-tokens", "4", "--prompt-words", "10"),
    )
    rows = _table_rows(output)
    streams, cache = rows[:4], rows[5:]  # rows[4] is the second table's header
    assert [(row[0], row[1]) for row in streams] == [
        ("1", "direct"),
        ("1", "gateway"),
        ("2", "direct"),
        ("2", "gateway"),
    ]
    for row in streams:
        assert 0 < _number(row[2]) <= _number(row[3]), row  # TTFT p50 <= p95
        assert _number(row[5]) > 0, row
    assert [row[0] for row in cache] == ["new context (cache miss)", "same context, other task (prefix hit)"]
    assert "--backend embedded --concurrency 1 2" in output


def test_noisy_neighbour_bench_floods_and_limits_engage() -> None:
    output = _run(
        "bench.noisy_neighbour_bench",
        *("--moments", "6", "--searches", "12", "--flooders", "4", "--floods", "embeddings", "search"),
        timeout_s=420,
    )
    rows = {row[0]: row for row in _table_rows(output)}
    assert set(rows) >= {"none (baseline)", "embeddings", "search"}
    for flood in ("embeddings", "search"):
        row = rows[flood]
        assert _number(row[2].split(" ")[0]) > 0, row  # her excess was refused (429)
        assert "failed" not in row[2], row  # refused cleanly, never an error
        assert row[6] == "0", row  # Bob's searches all answered, with hits
        # The bench measures the 2x target; a CI machine is too noisy for that, but not for this.
        assert _number(row[5]) < 5, row
    assert re.search(r"^\.venv/bin/python -m bench\.noisy_neighbour_bench --moments 6 ", output, re.MULTILINE)


def test_command_latency_bench_measures_a_round_trip_and_a_ping(minio_server: MinioServer) -> None:
    output = _run("bench.command_latency_bench", "--rounds", "5", "--warmup", "1")
    rows = {row[0]: row for row in _table_rows(output)}
    ping = rows["gRPC unary ping (grpc.health.v1.Health/Check)"]
    round_trip = rows["command round trip: succeeded on the results websocket"]
    assert ping[1] == round_trip[1] == "5"
    assert _number(ping[2]) > 0
    assert 0 < _number(round_trip[2]) <= _number(round_trip[3])
    # Each step of a command comes after the one before it.
    steps = ["command: POST answered (durably queued)", "command: Command read by the agent"]
    steps += ["command: its CommandResult acked", "command round trip: succeeded on the results websocket"]
    assert [_number(rows[step][2]) for step in steps] == sorted(_number(rows[step][2]) for step in steps)
    assert re.search(r"^\.venv/bin/python -m bench\.command_latency_bench --rounds 5 ", output, re.MULTILINE)


def test_workflow_bench_records_the_claim_once_and_replays_it(minio_server: MinioServer) -> None:
    # The claim only: the report's recording and runs are the same harness as its e2e test's.
    output = _run("bench.workflow_bench", "--macro", "claim", "--runs", "1", timeout_s=420)
    rows = {row[0]: row for row in _table_rows(output)}
    assert rows["run success (complete / runs)"][1] == "1 / 1 = 100.0 %", output
    assert rows["false completions"][1] == "0"
    assert rows["claims filed exactly right, once"][1] == "1 / 1"
    assert rows["model calls per replay: requests, embedded texts"][1] == "0, 0"
    # The person's demonstration and the replay were both timed, and the agent did the work.
    assert _number(rows["demonstration (the person) s"][1]) > 5
    assert _number(rows["replay p50 / demonstration"][1]) > 0
    assert _number(rows["agent CPU s per replay, mean"][1]) > 0
    assert rows["1"][2] == "complete", output
    command = r"^\.venv/bin/python -m bench\.workflow_bench --macro claim --runs 1$"
    assert re.search(command, output, re.MULTILINE), output


def test_workflow_bench_gives_each_report_replay_notes_of_their_own(tmp_path: Path) -> None:
    notes = notes_for(tmp_path, 9, "2025-W01")
    assert [len(n.lines) for n in notes] == [2, 3, 4, 5, 2, 3, 4, 5, 2]
    assert all(n.both_languages for n in notes), notes
    weeks = [n.week for n in notes]
    assert len(set(weeks)) == len(weeks) and "2025-W01" not in weeks, weeks
    assert all(n.path.read_text(encoding="utf-8").splitlines() == n.lines for n in notes)


def test_ops_bench_groups_detects_soaks_and_loads_a_real_server() -> None:
    grouped = _run("bench.ops_bench", "grouping", "--sessions", "3", "--warmup", "5")
    assert "1 disk_full incident(s), the largest holds 3 sessions; all 3 in one incident" in grouped, grouped
    detected = _run("bench.ops_bench", "detection", "--sessions", "3", "--minutes", "0.75", "--warmup", "5")
    found = re.search(r"precision ([0-9.]+) \((\d+)/(\d+) detections\)", detected)
    assert found is not None, detected
    soaked = _run("bench.ops_bench", "soak", "--sessions", "2", "--session-hours", "0.2")
    assert re.search(r"replayed in \d+ s .*: \d+ incident parts", soaked), soaked
    loaded = _run("bench.ops_bench", "capacity", "--sessions", "5", "--seconds", "3")
    (row,) = _table_rows(loaded)
    assert row[1] == "5" and _number(row[2]) > 0 and row[-1] == "none", row


def test_recall_eval_bench_scores_every_class_of_query() -> None:
    output = _run("bench.recall_eval_bench", "--per-class", "1", "--ask", "1", timeout_s=420)
    rows = _table_rows(output)
    scored, asked = rows[:9], rows[10:]  # rows[9] is the Ask table's header
    assert [row[0] for row in scored] == [
        *("zh-zh", "en-en", "cross-lingual", "content-date", "view-date", "exact-id", "paraphrase"),
        *("ocr-only", "overall"),
    ]
    for row in scored:
        queries = int(row[1])
        assert queries == (8 if row[0] == "overall" else 1), row
        recall_1, recall_5, mrr = (_number(cell) for cell in row[2:5])
        assert 0 <= recall_1 <= min(mrr, recall_5) and max(mrr, recall_5) <= 1, row
        # Each query not ranked first is counted once: a look-alike first, another document, or no hit.
        assert sum(int(cell) for cell in row[5:8]) == round(queries * (1 - recall_1)), row
    # The one question was answered by the embedded model and judged one way or another.
    (ask,) = asked
    assert ask[0] == "answer in the history" and ask[1] == "1", ask
    assert sum(int(cell) for cell in ask[2:5]) == 1, ask
    command = r"^command: \.venv/bin/python -m bench\.recall_eval_bench --per-class 1 --ask 1$"
    assert re.search(command, output, re.MULTILINE), output
