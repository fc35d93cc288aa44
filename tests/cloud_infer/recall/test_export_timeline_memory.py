"""Export and timeline over large histories on the real backends: memory bounded, nothing lost.

Peaks are Python allocations (``tracemalloc``) during one export or timeline call, compared with the
size of what the call reads: an implementation that holds the history whole peaks at a multiple of
it, a streaming one at a few segments (plus, for the export, its in-memory spool, at most 8 MiB).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import tracemalloc
import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.embedder import DIMENSIONS
from cloud_infer.recall.export import export_zip
from cloud_infer.recall.index import Filters, row_record
from cloud_infer.recall.moments import IndexRow
from cloud_infer.recall.runtime import RecallRuntime, open_recall
from cloud_infer.recall.service import RecallService
from cloud_infer.timeline.protocol import MAX_FRAMES_PER_SPAN, MAX_SPANS, from_ns
from cloud_infer.timeline.service import TimelineService
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store import StoreSettings, open_store
from recall_store.event_log import EventLog
from recall_store.store import ObjectStore
from tests.support.cloud import NS, focus, frame, metrics, png

T0 = 1_760_000_000 * NS
SEGMENTS = 200
EVENTS_PER_SEGMENT = 500
EXPORT_SEGMENTS = 100  # fewer but larger events than the timeline's: JSON makes each one slow
EXPORT_EVENTS_PER_SEGMENT = 400
T = TypeVar("T")
WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "notes", "pile", "up")
logger = logging.getLogger(__name__)


@pytest.fixture
async def backend(store_settings: StoreSettings) -> AsyncIterator[ObjectStore]:
    store = open_store(store_settings)
    yield store
    await store.close()


@pytest.fixture
async def recall(backend: ObjectStore, store_settings: StoreSettings) -> AsyncIterator[RecallRuntime]:
    """Recall on the real backend; its models load only when used, and an export uses none."""
    runtime = open_recall(
        RecallSettings(),
        store_settings,
        backend,
        PrivacyService(backend),
        LLMGateway(LLMSettings(backend="none"), None),
    )
    yield runtime
    await runtime.close()


@pytest.fixture
def owner() -> str:
    return f"mem-{uuid.uuid4().hex[:10]}"


async def peak_of(call: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """What ``call()`` returns and the peak of Python allocations made while it ran, in bytes."""
    tracemalloc.start()
    try:
        result = await call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def stored_frame(seq: int, t_ns: int, session: str) -> pb.Event:
    """A frame event as stored (a key instead of bytes): the timeline links frames, never reads them."""
    return pb.Event(
        seq=seq,
        time_unix_nano=t_ns,
        frame=pb.ScreenFrame(
            mime_type="image/png", width=64, height=48, stored_key=f"frames/{session}/{seq:012d}.png"
        ),
    )


async def append_all(log: EventLog, user: str, session: str, batches: Iterator[list[pb.Event]]) -> None:
    """Append every batch, a few at a time (each batch is built only when its turn comes)."""
    limit = asyncio.Semaphore(8)

    async def one(events: list[pb.Event]) -> None:
        async with limit:
            await log.append(user, session, events)

    pending: set[asyncio.Task[None]] = set()
    for events in batches:
        pending.add(asyncio.create_task(one(events)))
        if len(pending) >= 16:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*pending)


def export_history() -> Iterator[list[pb.Event]]:
    """EXPORT_SEGMENTS batches of EXPORT_EVENTS_PER_SEGMENT focus changes, each with a long title."""
    for s in range(EXPORT_SEGMENTS):
        batch = []
        for i in range(EXPORT_EVENTS_PER_SEGMENT):
            seq = s * EXPORT_EVENTS_PER_SEGMENT + i + 1
            title = f"notes-{seq}.md — " + " ".join(WORDS[(seq * k) % len(WORDS)] for k in range(40))
            batch.append(focus(seq, T0 + seq * NS // 10, "org.gnome.TextEditor", title))
        yield batch


async def run_export(service: RecallService, user: str, path: Path) -> None:
    with path.open("wb") as out:
        async for chunk in export_zip(service, user):
            out.write(chunk)


@pytest.mark.slow
async def test_export_of_a_large_history_stays_bounded_and_loses_no_event(
    backend: ObjectStore, recall: RecallRuntime, owner: str, tmp_path: Path
) -> None:
    log = EventLog(backend)
    await append_all(log, owner, "desk-1", export_history())
    last = EXPORT_SEGMENTS * EXPORT_EVENTS_PER_SEGMENT + 1
    await log.append(owner, "desk-1", [frame(last, T0, png())])

    _, peak = await peak_of(lambda: run_export(recall.service, owner, tmp_path / "export.zip"))

    with zipfile.ZipFile(tmp_path / "export.zip") as zipped:
        assert zipped.namelist() == [f"frames/desk-1/{last:012d}.png", "events.jsonl", "moments.jsonl"]
        assert zipped.read("moments.jsonl") == b"\n"  # nothing indexed
        json_bytes = zipped.getinfo("events.jsonl").file_size
        with zipped.open("events.jsonl") as lines:
            seqs = [int(json.loads(line)["seq"]) for line in lines]
    assert seqs == list(range(1, last + 1))
    logger.info("export: peak %d bytes for %d bytes of JSON", peak, json_bytes)
    # The export that held every event's JSON (as lines, joined, then encoded) peaked at 7x its size.
    assert json_bytes > 15_000_000
    assert peak < json_bytes / 4, f"export peaked at {peak:,} bytes for {json_bytes:,} bytes of JSON"


async def test_export_writes_moments_in_time_order_across_pages(
    backend: ObjectStore, recall: RecallRuntime, owner: str, tmp_path: Path
) -> None:
    service = recall.service
    redacted = pb.Event(seq=3, time_unix_nano=T0 + 2 * NS)  # its kind was erased by privacy settings
    await EventLog(backend).append(
        owner, "desk-2", [focus(1, T0, "kate", "todo — ünïcode"), metrics(2, T0), redacted]
    )
    # Equal times, so the order within a time rests on the id, as ``rows`` sorts them.
    rows = [
        IndexRow(
            id=f"desk-2.{seq}",
            moment_id=f"m-{seq // 4}",
            session_id="desk-2",
            seq=seq,
            time_ms=T0 // 1_000_000 + seq // 3,
            start_ms=T0 // 1_000_000,
            app_id="kate",
            title=f"todo {seq} — ünïcode",
            url="",
            source="title",
            text=f"line {seq}",
        )
        for seq in (7, 1, 12, 3, 9, 10, 2, 11, 5, 4, 8, 6)
    ]
    vector = np.zeros(DIMENSIONS, dtype=np.float32)
    await service.index.add(owner, [row_record(row, vector) for row in rows])
    expected = await service.index.rows(owner, Filters())
    assert [r["id"] for r in expected] != [f"desk-2.{seq}" for seq in range(1, 13)]  # ids sort as text

    pages = [page async for page in service.index.iter_rows(owner, page=5)]
    assert [len(page) for page in pages] == [5, 5, 2]
    assert [row for page in pages for row in page] == expected

    await run_export(service, owner, tmp_path / "export.zip")
    with zipfile.ZipFile(tmp_path / "export.zip") as zipped:
        moments = zipped.read("moments.jsonl").decode()
        events = zipped.read("events.jsonl").decode()
    assert moments == "\n".join(json.dumps(r, ensure_ascii=False) for r in expected) + "\n"
    assert [json.loads(line) for line in events.splitlines()] == [
        {
            "session_id": "desk-2",
            "seq": "1",
            "timeUnixNano": str(T0),
            "windowFocus": {
                "windowId": "7",  # 64-bit integers are strings in protobuf JSON
                "appId": "kate",
                "wmClass": "kate.kate",
                "title": "todo — ünïcode",
            },
        },
        {
            "session_id": "desk-2",
            "seq": "2",
            "timeUnixNano": str(T0),
            "metrics": {"cpuPercent": 12.5, "processCount": 9},
        },
    ]
    assert events.endswith("\n") and "ünïcode" in events


def timeline_history(session: str) -> Iterator[list[pb.Event]]:
    """SEGMENTS batches of EVENTS_PER_SEGMENT events: one focus and two frames per batch, metrics between."""
    for s in range(SEGMENTS):
        base = s * EVENTS_PER_SEGMENT
        batch = [focus(base + 1, T0 + (base + 1) * NS, "kate", f"notes {s}")]
        for i in range(2, EVENTS_PER_SEGMENT + 1):
            seq, t = base + i, T0 + (base + i) * NS
            batch.append(stored_frame(seq, t, session) if i in (2, EVENTS_PER_SEGMENT) else metrics(seq, t))
        yield batch


def window(first_ns: int, last_ns: int) -> tuple[datetime, datetime]:
    return from_ns(first_ns), from_ns(last_ns + NS)


@pytest.mark.slow
async def test_timeline_of_many_events_holds_spans_not_events(backend: ObjectStore, owner: str) -> None:
    await append_all(EventLog(backend), owner, "desk-1", timeline_history("desk-1"))
    segment_bytes = 0
    for key in await backend.list_keys(owner, prefix="events/"):
        segment_bytes += len(await backend.get(owner, key))
    start, end = window(T0, T0 + SEGMENTS * EVENTS_PER_SEGMENT * NS)

    reply, peak = await peak_of(lambda: TimelineService(EventLog(backend)).timeline(owner, start, end))

    assert len(reply.spans) == SEGMENTS and not reply.truncated
    assert [len(span.frames) for span in reply.spans] == [2] * SEGMENTS
    assert reply.spans[-1].end == from_ns(T0 + SEGMENTS * EVENTS_PER_SEGMENT * NS)
    logger.info("timeline: peak %d bytes for %d bytes of segments", peak, segment_bytes)
    assert peak < segment_bytes, f"timeline peaked at {peak:,} bytes for {segment_bytes:,} bytes of segments"


async def test_timeline_returns_the_earliest_max_spans_and_says_it_truncated(
    backend: ObjectStore, owner: str
) -> None:
    log = EventLog(backend)
    # Two sessions interleaved in time, so the earliest spans come from both.
    per_session = MAX_SPANS // 2 + 100
    for offset, session in enumerate(("desk-b", "desk-a")):
        events = [
            focus(seq, T0 + (2 * seq + offset) * NS, "kate", f"t{seq}") for seq in range(1, per_session + 1)
        ]
        for first in range(0, per_session, 1000):
            await log.append(owner, session, events[first : first + 1000])
    start, end = window(T0, T0 + 2 * (per_session + 1) * NS)
    service = TimelineService(log)

    reply = await service.timeline(owner, start, end)
    assert reply.truncated and len(reply.spans) == MAX_SPANS
    expected = sorted(
        (T0 + (2 * seq + offset) * NS, session)
        for offset, session in enumerate(("desk-b", "desk-a"))
        for seq in range(1, per_session + 1)
    )[:MAX_SPANS]
    assert [(span.start, span.session_id) for span in reply.spans] == [
        (from_ns(t), session) for t, session in expected
    ]
    # Each span ends at its session's next focus, as without the bound.
    assert reply.spans[0].end == from_ns(T0 + 2 * 2 * NS)

    # Asked again from the last span's start, the rest comes (with that span again).
    rest = await service.timeline(owner, reply.spans[-1].start, end)
    assert not rest.truncated
    assert len(rest.spans) == 2 * per_session - MAX_SPANS + 1


@pytest.mark.parametrize(
    "frames", [MAX_FRAMES_PER_SPAN, MAX_FRAMES_PER_SPAN + 100, 5 * MAX_FRAMES_PER_SPAN + 1]
)
async def test_a_spans_frames_are_sampled_keeping_the_first_and_the_last(
    backend: ObjectStore, owner: str, frames: int
) -> None:
    events = [focus(1, T0, "kate", "one long span")]
    events += [stored_frame(seq, T0 + seq * NS, "desk-1") for seq in range(2, frames + 2)]
    log = EventLog(backend)
    for first in range(0, len(events), 300):
        await log.append(owner, "desk-1", events[first : first + 300])
    start, end = window(T0, T0 + (frames + 1) * NS)

    reply = await TimelineService(log).timeline(owner, start, end)

    assert not reply.truncated  # no span left out: a narrower window would not give more frames
    (span,) = reply.spans
    seqs = [int(f.url.rsplit("/", 1)[1].split(".")[0]) for f in span.frames]
    assert len(seqs) == min(frames, MAX_FRAMES_PER_SPAN)
    assert seqs[0] == 2 and seqs[-1] == frames + 1
    assert seqs == sorted(set(seqs))
    gaps = [b - a for a, b in itertools.pairwise(seqs)]
    even = (frames - 1) / (MAX_FRAMES_PER_SPAN - 1)
    assert max(gaps) <= 2 * even + 1, "frames are spread over the whole span"
    assert span.frames[-1].time == from_ns(T0 + (frames + 1) * NS) == span.end
