"""Recall freshness: ingest → searchable for a burst of frames and for a steady stream, through the product.

Everything is the product's except the agent: the committed stream (``Fanout``, Recall registered as
the server registers it), ``RecallPipeline`` with its default settings (OCR threads, embedding lanes)
and ``RecallService.search``, on the local store in a temporary directory. Frames are 1280x800 WebP
screenshots of text (about 16 lines each, English and Chinese), each page distinct (so each is OCR'd
whole: the worst case) and carrying a unique reference number.

* burst: ``--burst`` frames over ``--windows`` windows (a focus event before each window's frames)
  committed as one batch, as when an agent's spool is flushed or frames queue up behind a slow index;
* steady: ``--steady`` frames of one window, one every ``--interval`` seconds, each its own batch.

A frame is searchable when ``RecallService.search`` for its reference number returns a hit whose
snippet holds the number. The bench listens to the pipeline's live updates (what the sidebar listens
to) and searches each number as soon as a row holding it was committed, so it does not load the CPU by
polling; numbers never seen in a row (misread by OCR) are searched once more at the end and count as
missed when not found. Latency is from the batch's publication to that search's answer.

Models are loaded, and a first frame indexed in another session, before the clock starts.

Run: ``.venv/bin/python -m bench.recall_freshness_bench``
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bench.report import command_line, fmt, markdown_table, percentile
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.ocr import OcrEngine
from cloud_infer.recall.runtime import RecallRuntime, open_recall
from cloud_infer.stream import Fanout, StreamSettings
from cloud_infer.tenancy.fair_pool import Priority
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.config import StoreSettings
from recall_store.directory import UserDirectory
from recall_store.event_log import EventLog
from recall_store.factory import open_store

USER = "bench-fresh-user"
FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
SIZE = (1280, 800)
NS_PER_S = 1_000_000_000
_LINES = 16
_DEADLINE_S = 900.0
_EN = (
    "quarterly budget review for the northern region shows travel costs above plan",
    "the vendor confirmed delivery of the replacement laptops next Thursday",
    "please update the onboarding checklist before the new hires start",
    "incident report: the payment gateway timed out for twelve minutes",
    "meeting notes: agree on the release date and the rollback plan",
    "the contract renewal needs a signature from legal by Friday",
    "customer feedback mentions slow search and missing export options",
    "draft the announcement for the office move and the parking changes",
)
_ZH = (
    "第三季度预算审查显示差旅费用超出计划",
    "供应商确认下周四交付替换的笔记本电脑",
    "请在新员工入职前更新入职清单",
    "事故报告支付网关超时十二分钟",
    "会议纪要确定发布日期和回滚方案",
    "合同续签需要法务在周五前签字",
)


@dataclass
class Frame:
    number: str
    image: bytes
    window: int


@dataclass
class Watch:
    """When each reference number was published, and when a search first found it."""

    published: dict[str, float] = field(default_factory=dict)
    found: dict[str, float] = field(default_factory=dict)

    def latencies(self) -> list[float]:
        return [self.found[n] - self.published[n] for n in self.found]


def page(rng: random.Random, number: str, window: int) -> bytes:
    """A distinct page of text with the reference number on a random line, as WebP (q60, as agents send)."""
    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 22)
    lines = [f"{rng.choice(_EN)} #{rng.randrange(100, 999)}" for _ in range(_LINES - 4)]
    lines += [rng.choice(_ZH) for _ in range(3)]
    rng.shuffle(lines)
    where = rng.randrange(len(lines) + 1)
    lines.insert(where, f"Window {window} reference")
    for i, line in enumerate(lines):
        draw.text((40, 30 + i * 46), line, fill=(20, 20, 20), font=font)
    # In a cell of its own, as in a form or a table (OCR runs words of one line together).
    draw.text((640, 30 + where * 46), number, fill=(20, 20, 20), font=font)
    out = io.BytesIO()
    image.save(out, format="WEBP", quality=60)
    return out.getvalue()


def focus_event(seq: int, t: int, window: int) -> pb.Event:
    return pb.Event(
        seq=seq,
        time_unix_nano=t,
        window_focus=pb.WindowFocus(
            window_id=window, app_id="mousepad", wm_class="mousepad", title=f"notes-{window}.txt - Mousepad"
        ),
    )


def frame_event(seq: int, t: int, frame: Frame) -> pb.Event:
    return pb.Event(
        seq=seq,
        time_unix_nano=t,
        frame=pb.ScreenFrame(
            image=frame.image,
            mime_type="image/webp",
            width=SIZE[0],
            height=SIZE[1],
            dhash=seq,
            window_id=frame.window,
        ),
    )


class Bench:
    def __init__(self, runtime: RecallRuntime, stream: Fanout, log: EventLog) -> None:
        self.runtime = runtime
        self.stream = stream
        self.log = log
        self._last_seq: dict[str, int] = {}

    async def publish(self, session: str, events: list[pb.Event]) -> None:
        """What ingest does with an agent's batch: append it to the log, then hand it to the stream."""
        await self.log.append(USER, session, events)
        size = sum(e.ByteSize() for e in events)
        self.stream.publish(USER, session, events, self._last_seq.get(session, 0), size)
        self._last_seq[session] = events[-1].seq

    async def searchable(self, number: str) -> bool:
        found = await self.runtime.service.search(USER, number, limit=5)
        return any(number in "".join(f.text for f in hit.snippet) for hit in found.hits)

    async def watch(self, watch: Watch, done: asyncio.Event) -> None:
        """Search each number once a committed row holds it; record when the search finds it."""
        updates = self.runtime.pipeline.subscribe(USER)
        try:
            while not done.is_set() or not updates.empty():
                try:
                    async with asyncio.timeout(0.2):
                        rows = await updates.get()
                except TimeoutError:
                    continue
                text = "\n".join(row.text for row in rows)
                for number in list(watch.published):
                    if number not in watch.found and number in text and await self.searchable(number):
                        watch.found[number] = time.monotonic()
        finally:
            self.runtime.pipeline.unsubscribe(USER, updates)

    async def settle(self, watch: Watch) -> None:
        await self.stream.idle()
        for number in list(watch.published):
            if number not in watch.found and await self.searchable(number):
                watch.found[number] = time.monotonic()


async def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    settings = RecallSettings()
    store_settings = StoreSettings(backend="local", local_root=root / "store")
    store = open_store(store_settings)
    engines = [OcrEngine(threads=1) for _ in range(settings.ocr_workers)]
    for engine in engines:  # the models load on first use: not inside the measurement
        engine.read(np.full((64, 256, 3), 255, dtype=np.uint8))
    no_llm = LLMGateway(LLMSettings(backend="none"), None)
    runtime = open_recall(settings, store_settings, store, PrivacyService(store), no_llm, ocr_engines=engines)
    log = EventLog(store)
    stream = Fanout(StreamSettings(), log, UserDirectory(store))
    runtime.consume(stream)
    stream.start()
    bench = Bench(runtime, stream, log)
    rng = random.Random(args.seed)
    numbers = iter(rng.sample(range(100_000, 1_000_000), args.burst + args.steady))
    now = time.time_ns() - 3600 * NS_PER_S
    try:
        # Warm: every bulk embedding handle, the query lane, the index and the search path.
        await runtime.embedder.warm_up()
        await runtime.embedder.encode(USER, ["warm up one", "warm up two"] * 4, Priority.BACKGROUND)
        warm = Frame("000000", page(rng, "000000", 1), 1)
        await bench.publish("warm", [focus_event(1, now, 1), frame_event(2, now, warm)])
        await stream.idle()
        await bench.searchable("000000")

        burst = Watch()
        frames = []
        for i in range(args.burst):
            number, window = str(next(numbers)), 10 + i * args.windows // args.burst
            frames.append(Frame(number, page(rng, number, window), window))
        events: list[pb.Event] = []
        for frame in frames:
            if not events or events[-1].frame.window_id != frame.window:
                events.append(focus_event(len(events) + 1, now + len(events) * NS_PER_S, frame.window))
            events.append(frame_event(len(events) + 1, now + len(events) * NS_PER_S, frame))
        done = asyncio.Event()
        watching = asyncio.create_task(bench.watch(burst, done))
        started = time.monotonic()
        for frame in frames:
            burst.published[frame.number] = started
        await bench.publish("burst", events)
        await stream.idle()
        burst_s = time.monotonic() - started
        done.set()
        await watching
        await bench.settle(burst)
        newest = [f.number for f in frames if f.window == frames[-1].window]

        steady = Watch()
        done = asyncio.Event()
        watching = asyncio.create_task(bench.watch(steady, done))
        t = now + 600 * NS_PER_S
        await bench.publish("steady", [focus_event(1, t, 99)])
        for i in range(args.steady):
            number = str(next(numbers))
            frame = Frame(number, page(rng, number, 99), 99)
            tick = time.monotonic()
            steady.published[frame.number] = tick
            await bench.publish("steady", [frame_event(i + 2, t + (i + 1) * NS_PER_S, frame)])
            await asyncio.sleep(max(0.0, args.interval - (time.monotonic() - tick)))
        await stream.idle()
        done.set()
        await watching
        await bench.settle(steady)
    finally:
        await stream.close()
        await runtime.close()
        await store.close()
    return {
        "cores": len(os.sched_getaffinity(0)),
        "ocr_workers": settings.ocr_workers,
        "embed_workers": getattr(settings, "embed_workers", 1),
        "burst": _summary(burst, args.burst),
        "burst_all_indexed_s": burst_s,
        "burst_newest_window": _summary(_only(burst, newest), len(newest)),
        "steady": _summary(steady, args.steady),
    }


def _only(watch: Watch, numbers: Sequence[str]) -> Watch:
    return Watch(
        {n: watch.published[n] for n in numbers}, {n: watch.found[n] for n in numbers if n in watch.found}
    )


def _summary(watch: Watch, frames: int) -> dict[str, Any]:
    latencies = watch.latencies()
    return {
        "found": f"{len(latencies)}/{frames}",
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "max_s": max(latencies, default=float("nan")),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--burst", type=int, default=29, help="frames committed together")
    parser.add_argument("--windows", type=int, default=4, help="windows the burst's frames are spread over")
    parser.add_argument("--steady", type=int, default=20, help="frames of the steady phase")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between steady frames")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--label", default="", help="a name for this run in the table (e.g. a commit)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    sys.stdout.write(f"command: {command_line('bench.recall_freshness_bench', argv)}\n")
    with tempfile.TemporaryDirectory(prefix="recall-fresh-") as tmp:
        result = asyncio.run(asyncio.wait_for(run(args, Path(tmp)), _DEADLINE_S))
    rows = []
    for phase in ("burst", "burst_newest_window", "steady"):
        s = result[phase]
        rows.append(
            [args.label, phase, s["found"], fmt(s["p50_s"], 1), fmt(s["p95_s"], 1), fmt(s["max_s"], 1)]
        )
    sys.stdout.write(
        f"{result['cores']} usable cores, {result['ocr_workers']} OCR threads, "
        f"{result['embed_workers']} bulk embedding handles; burst fully indexed in "
        f"{fmt(result['burst_all_indexed_s'], 1)} s\n"
        + markdown_table(["run", "phase", "found", "p50 s", "p95 s", "max s"], rows)
        + "\n"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
