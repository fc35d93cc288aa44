"""Recall on the issue-14 evaluation set: recall@1/@5 and MRR per class of query, and Ask's truthfulness.

The set is data (``bench/recall_eval/corpus.yaml``, ``queries.yaml``): office documents in Chinese and
English seen over 15 days, each with look-alikes that differ in a field or two, and labelled queries
in classes (same language, cross-lingual, content date, view date, exact id, paraphrase, OCR only).

Each document becomes what the agent would send while its window had focus, at the time it was seen:
a window focus (title), the browser's URL, the accessibility text, and for documents that exist only
as pixels a screen frame drawn with a CJK font, so the real OCR reads it. The events are stored and
handed to the real pipeline, as ingest and the committed stream do, with the product's default
settings (embedded models, a local store). Every query then runs through ``RecallService.search``, the
search the HTTP API serves, at the set's fixed "now" and time zone so "yesterday" resolves the same
way on every run. Ask questions go through ``AskService.ask`` with the default (embedded) model.

Run: ``.venv/bin/python -m bench.recall_eval_bench``
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from PIL import Image, ImageDraw, ImageFont

from bench.report import command_line, fmt, markdown_table
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.factory import open_gateway
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.runtime import RecallRuntime, open_recall
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.config import StoreSettings
from recall_store.event_log import EventLog
from recall_store.factory import open_store

DATA = Path(__file__).parent / "recall_eval"
USER, SESSION = "eval-user", "eval-desk"
CLASSES = (
    "zh-zh",
    "en-en",
    "cross-lingual",
    "content-date",
    "view-date",
    "exact-id",
    "paraphrase",
    "ocr-only",
)
_NS_PER_S = 1_000_000_000
_FALLBACK_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
# What a truthful "it is not in your history" looks like, in either language.
_NOT_FOUND = re.compile(
    r"could not find|couldn't find|cannot find|can't find|not found"
    r"|no (relevant )?(information|excerpt|record)|do(es)? not (contain|mention|include)"
    r"|找不到|没有找到|未找到|没有(相关)?(信息|记录)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Doc:
    id: str
    seen: datetime
    app: str
    title: str
    url: str
    text: str
    screen: tuple[str, ...]

    @property
    def family(self) -> str:
        return self.id.split("/", 1)[0]


@dataclass(frozen=True)
class Query:
    q: str
    cls: str
    expect: str


@dataclass(frozen=True)
class AskItem:
    q: str
    expect: str | None
    answer: tuple[str, ...] | None


@dataclass(frozen=True)
class EvalSet:
    now: datetime
    tz: str
    docs: tuple[Doc, ...]
    queries: tuple[Query, ...]
    ask: tuple[AskItem, ...]


def load(data: Path = DATA) -> EvalSet:
    corpus = yaml.safe_load((data / "corpus.yaml").read_text())
    labels = yaml.safe_load((data / "queries.yaml").read_text())
    clock = corpus["clock"]
    zone = ZoneInfo(clock["tz"])
    docs = tuple(
        Doc(
            id=d["id"],
            seen=datetime.strptime(f"{clock['year']}-{d['seen']}", "%Y-%m-%d %H:%M").replace(tzinfo=zone),
            app=d["app"],
            title=d["title"],
            url=d.get("url", ""),
            text=d.get("text", ""),
            screen=tuple(d.get("screen", ())),
        )
        for d in corpus["docs"]
    )
    queries = tuple(Query(q["q"], q["class"], q["expect"]) for q in labels["queries"])
    ask = tuple(
        AskItem(a["q"], a["expect"], tuple(a["answer"]) if a["answer"] else None) for a in labels["ask"]
    )
    known = {d.id for d in docs}
    assert len(known) == len(docs), "document ids repeat"
    for expect in [q.expect for q in queries] + [a.expect for a in ask]:
        assert expect is None or expect in known, expect
    assert {q.cls for q in queries} <= set(CLASSES), {q.cls for q in queries} - set(CLASSES)
    return EvalSet(datetime.fromisoformat(clock["now"]), clock["tz"], docs, queries, ask)


def subset(full: EvalSet, per_class: int | None, asks: int | None) -> EvalSet:
    """The first ``per_class`` queries of each class and ``asks`` questions, over the families they need."""
    queries = full.queries
    if per_class is not None:
        queries = tuple(q for c in CLASSES for q in [q for q in full.queries if q.cls == c][:per_class])
    ask = full.ask if asks is None else full.ask[:asks]
    if per_class is None:
        return EvalSet(full.now, full.tz, full.docs, queries, ask)
    families = {e.split("/", 1)[0] for e in [q.expect for q in queries] + [a.expect for a in ask] if e}
    docs = tuple(d for d in full.docs if d.family in families)
    return EvalSet(full.now, full.tz, docs, queries, ask)


def cjk_font() -> str:
    """A font with both CJK and Latin glyphs, as fontconfig finds one on this machine."""
    try:
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", ":lang=zh-cn"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        found = ""
    return found if found.endswith((".ttc", ".ttf", ".otf")) else _FALLBACK_FONT


def screen(lines: Sequence[str], font_path: str) -> bytes:
    """A WebP 'screenshot' of ``lines``, dark text on white, as the agent would send it."""
    image = Image.new("RGB", (1024, 640), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(font_path, 22)
    for i, line in enumerate(lines):
        draw.text((40, 40 + i * 36), line, fill=(20, 20, 20), font=font)
    out = io.BytesIO()
    image.save(out, format="WEBP", quality=60)
    return out.getvalue()


def doc_events(doc: Doc, window_id: int, first_seq: int, font_path: str) -> list[pb.Event]:
    """What the agent sends while ``doc``'s window has focus: focus, URL, accessibility text, a frame."""
    t = int(doc.seen.timestamp()) * _NS_PER_S
    events = [
        pb.Event(
            time_unix_nano=t,
            window_focus=pb.WindowFocus(
                window_id=window_id, app_id=doc.app, wm_class=doc.app, title=doc.title
            ),
        )
    ]
    if doc.url:
        events.append(
            pb.Event(time_unix_nano=t + 1 * _NS_PER_S, url=pb.UrlVisit(app_id=doc.app, url=doc.url))
        )
    if doc.text:
        snapshot = pb.TextSnapshot(window_id=window_id, app_id=doc.app, source="atspi", text=doc.text)
        events.append(pb.Event(time_unix_nano=t + 2 * _NS_PER_S, text=snapshot))
    if doc.screen:
        image = screen(doc.screen, font_path)
        frame = pb.ScreenFrame(
            image=image, mime_type="image/webp", width=1024, height=640, dhash=window_id, window_id=window_id
        )
        events.append(pb.Event(time_unix_nano=t + 3 * _NS_PER_S, frame=frame))
    for offset, event in enumerate(events):
        event.seq = first_seq + offset
    return events


async def index(runtime: RecallRuntime, docs: Sequence[Doc]) -> tuple[dict[str, str], float]:
    """Feed every document through the pipeline in view order; the doc id of each moment, seconds taken."""
    font_path = cjk_font()
    log = EventLog(runtime.service.store)
    moments: dict[str, str] = {}
    seq = 1
    started = time.perf_counter()
    for window_id, doc in enumerate(sorted(docs, key=lambda d: d.seen), start=100):
        events = doc_events(doc, window_id, seq, font_path)
        seq += len(events)
        await log.append(USER, SESSION, events)  # what ingest does before the stream delivers them
        await runtime.pipeline.handle(USER, SESSION, events)
        moments[f"{SESSION}.{events[0].seq}"] = doc.id
    return moments, time.perf_counter() - started


@dataclass
class Ranked:
    query: Query
    rank: int | None  # 0-based rank of the expected document among the hits, None: not found
    top: str | None  # the document ranked first
    search_ms: float
    rewritten: bool  # nothing was found, and the model's rewrite of the query was searched instead


async def search_all(runtime: RecallRuntime, evalset: EvalSet, moments: dict[str, str]) -> list[Ranked]:
    results = []
    for query in evalset.queries:
        started = time.perf_counter()
        found = await runtime.service.search(USER, query.q, tz=evalset.tz, now=evalset.now, limit=20)
        took = (time.perf_counter() - started) * 1000
        docs = [moments.get(hit.moment_id, "?") for hit in found.hits]
        rank = docs.index(query.expect) if query.expect in docs else None
        results.append(Ranked(query, rank, docs[0] if docs else None, took, bool(found.query.rewritten)))
    return results


def scores(ranked: Sequence[Ranked]) -> dict[str, float]:
    n = len(ranked)
    family = [r for r in ranked if r.rank != 0 and r.top is not None]
    return {
        "queries": n,
        "recall@1": sum(r.rank == 0 for r in ranked) / n,
        "recall@5": sum(r.rank is not None and r.rank < 5 for r in ranked) / n,
        "mrr": sum(1 / (r.rank + 1) for r in ranked if r.rank is not None) / n,
        "distractor_first": sum(
            r.top is not None and r.top.split("/")[0] == r.query.expect.split("/")[0] for r in family
        ),
        "other_first": sum(
            r.top is not None and r.top.split("/")[0] != r.query.expect.split("/")[0] for r in family
        ),
        "nothing": sum(r.top is None for r in ranked),
    }


@dataclass
class Asked:
    item: AskItem
    answer: str
    mode: str  # how Ask answered: "model", "extractive" (the history's own lines) or "not_found"
    verdict: str  # "correct", "wrong", "not found"
    seconds: float


def judge(item: AskItem, answer: str, mode: str) -> str:
    said_not_found = mode == "not_found" or _NOT_FOUND.search(answer) is not None
    if item.answer is not None and any(expected.lower() in answer.lower() for expected in item.answer):
        return "correct"
    return "not found" if said_not_found else "wrong"


async def ask_all(runtime: RecallRuntime, evalset: EvalSet) -> list[Asked]:
    results = []
    for item in evalset.ask:
        started = time.perf_counter()
        answer = await runtime.ask.ask(USER, item.q, tz=evalset.tz)
        async for _ in answer.deltas():  # what the sidebar streams; the checked answer follows
            pass
        final = answer.final()
        verdict = judge(item, final.text, final.mode)
        results.append(Asked(item, final.text, final.mode, verdict, time.perf_counter() - started))
    return results


async def evaluate(evalset: EvalSet, tmp: Path) -> dict[str, Any]:
    store_settings = StoreSettings(backend="local", local_root=tmp / "store")
    store = open_store(store_settings)
    # The default backend (the embedded model), as a server runs out of the box. The bench asks far faster
    # than a person, so its user's LLM request limit is raised (the only setting changed): otherwise the
    # query rewrites of the searches use up the minute's requests and Ask is refused.
    llm = open_gateway(LLMSettings(user_requests_per_minute=1_000_000))
    runtime = open_recall(RecallSettings(), store_settings, store, PrivacyService(store), llm)
    try:
        moments, index_s = await index(runtime, evalset.docs)
        await runtime.service.search(USER, "warm up", tz=evalset.tz, now=evalset.now)
        ranked = await search_all(runtime, evalset, moments)
        asked = await ask_all(runtime, evalset) if evalset.ask else []
    finally:
        await runtime.close()
        await llm.close()
        await store.close()
    return {"index_s": index_s, "ranked": ranked, "asked": asked}


def out(*lines: str) -> None:
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _score_row(name: str, s: dict[str, float]) -> list[str]:
    return [
        name,
        str(s["queries"]),
        fmt(s["recall@1"], 2),
        fmt(s["recall@5"], 2),
        fmt(s["mrr"], 2),
        str(s["distractor_first"]),
        str(s["other_first"]),
        str(s["nothing"]),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, help="only the first N queries of each class (smoke runs)")
    parser.add_argument("--ask", type=int, help="only the first N Ask questions (0: no Ask)")
    parser.add_argument("--misses", action="store_true", help="list every query not ranked first")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    out(f"command: {command_line('bench.recall_eval_bench', argv)}")
    evalset = subset(load(), args.per_class, args.ask)
    asked_for = {q.expect for q in evalset.queries}
    out(
        f"set: {len(evalset.docs)} documents ({len(asked_for)} asked for, "
        f"{len(evalset.docs) - len(asked_for)} look-alikes and others), {len(evalset.queries)} queries, "
        f"{len(evalset.ask)} Ask questions; now {evalset.now.isoformat()} {evalset.tz}"
    )
    with tempfile.TemporaryDirectory(prefix="recall-eval-") as tmp:
        result = asyncio.run(evaluate(evalset, Path(tmp)))
    ranked: list[Ranked] = result["ranked"]
    per_class = {c: scores([r for r in ranked if r.query.cls == c]) for c in CLASSES}
    per_class = {c: s for c, s in per_class.items() if s["queries"]}
    overall = scores(ranked)
    latencies = sorted(r.search_ms for r in ranked)
    out(
        f"indexed in {fmt(result['index_s'], 1)} s; search p50 {fmt(latencies[len(latencies) // 2], 1)} ms; "
        f"{sum(r.rewritten for r in ranked)} queries found nothing and were rewritten by the model "
        f"({sum(r.rewritten and r.rank == 0 for r in ranked)} of them then ranked the document first)",
        "",
        markdown_table(
            [
                "class",
                "queries",
                "recall@1",
                "recall@5",
                "MRR",
                "look-alike first",
                "other doc first",
                "no hit",
            ],
            [_score_row(c, s) for c, s in per_class.items()] + [_score_row("overall", overall)],
        ),
    )
    if args.misses:
        for r in ranked:
            if r.rank != 0:
                where = "not in the hits" if r.rank is None else f"rank {r.rank + 1}"
                how = " (rewritten)" if r.rewritten else ""
                out(f"  [{r.query.cls}] {r.query.q!r}{how}: {r.query.expect} {where}; first {r.top}")
    asked: list[Asked] = result["asked"]
    if asked:
        rows = []
        for label, group in (
            ("answer in the history", [a for a in asked if a.item.answer is not None]),
            ("not in the history", [a for a in asked if a.item.answer is None]),
        ):
            if group:
                counts = [sum(a.verdict == v for a in group) for v in ("correct", "wrong", "not found")]
                modes = [sum(a.mode == m for a in group) for m in ("model", "extractive", "not_found")]
                mean_s = sum(a.seconds for a in group) / len(group)
                cells = [str(len(group)), *(str(n) for n in counts), " / ".join(str(n) for n in modes)]
                rows.append([label, *cells, fmt(mean_s, 1)])
        header = ["Ask questions", "asked", "correct", "wrong", "said not found"]
        out("", markdown_table([*header, "model / extractive / not found", "mean s"], rows))
        if args.misses:
            for a in asked:
                out(f"  [{a.verdict}, {a.mode}] {a.item.q!r}: {a.answer[:160]!r}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "per_class": per_class,
                    "overall": overall,
                    "index_s": result["index_s"],
                    "queries": [
                        {
                            "q": r.query.q,
                            "class": r.query.cls,
                            "expect": r.query.expect,
                            "rank": r.rank,
                            "top": r.top,
                            "rewritten": r.rewritten,
                        }
                        for r in ranked
                    ],
                    "ask": [
                        {"q": a.item.q, "verdict": a.verdict, "mode": a.mode, "answer": a.answer}
                        for a in asked
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
