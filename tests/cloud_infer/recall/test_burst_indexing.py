"""A burst of frames over several windows in one call: read on every OCR thread, the newest focused
window committed first, and the index left exactly as reading the events one at a time leaves it,
also when an erasure or a failure comes in the middle."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.embedder import Embedder
from cloud_infer.recall.index import Filters
from cloud_infer.recall.moments import IndexRow
from cloud_infer.recall.ocr import OcrEngine
from cloud_infer.recall.pipeline import state_key
from cloud_infer.recall.reconcile import Consistency
from cloud_infer.recall.runtime import RecallRuntime, open_recall
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.config import StoreSettings
from recall_store.event_log import EventLog
from recall_store.factory import open_store
from tests.support.recall import NS_PER_S, focus, frame, space_objects, utc
from tests.support.screens import screen

SESSION = "desk-burst"
FILLER = [f"line {n} of the quarterly planning notes" for n in range(10)]


def page(name: str, extra: tuple[str, ...] = ()) -> bytes:
    """A page of twelve lines (its text spans most of the frame, so another page is read whole)."""
    return screen([f"{name} heading", *FILLER, f"{name} footer", *extra])


def burst(start_ns: int) -> list[pb.Event]:
    """Windows 1, 2, 3 and 1 again: distinct pages, a typed line (a band), an unchanged frame."""
    t = [start_ns + i * NS_PER_S for i in range(20)]
    return [
        focus(1, t[0], 1, "mousepad", "alpha.txt"),
        frame(2, t[1], 1, page("ALPHAONE")),
        frame(3, t[2], 1, page("ALPHAONE", ("typed ALPHABAND",))),  # only a band changed
        frame(4, t[3], 1, page("ALPHATWO")),  # another page: read whole
        focus(5, t[4], 2, "xterm", "beta"),
        frame(6, t[5], 2, page("BETAONE")),
        frame(7, t[6], 2, page("BETATWO")),
        focus(8, t[7], 3, "chromium", "gamma - Chromium"),
        frame(9, t[8], 3, page("GAMMAONE")),
        frame(10, t[9], 3, page("GAMMATWO")),
        frame(11, t[10], 3, page("GAMMATHREE")),
        focus(12, t[11], 1, "mousepad", "alpha.txt"),  # back: a new moment of window 1
        frame(13, t[12], 1, page("ALPHATWO")),  # what window 1 last showed: nothing to read
        focus(14, t[13], 4, "code", "delta.py"),
        frame(15, t[14], 4, page("DELTAONE")),
    ]


@pytest.fixture(scope="module")
def second_engine() -> OcrEngine:
    return OcrEngine()


@contextlib.asynccontextmanager
async def recall_on(
    settings: StoreSettings, embedder: Embedder, engines: list[OcrEngine]
) -> AsyncIterator[RecallRuntime]:
    store = open_store(settings)
    no_llm = LLMGateway(LLMSettings(backend="none"), None)
    recall = RecallSettings(ocr_workers=len(engines))
    runtime = open_recall(recall, settings, store, PrivacyService(store), no_llm, embedder, engines)
    try:
        yield runtime
    finally:
        await runtime.close()
        await store.close()


@pytest.fixture
async def local_recall(
    tmp_path: Path, embedder: Embedder, ocr_engine: OcrEngine, second_engine: OcrEngine
) -> AsyncIterator[RecallRuntime]:
    """Recall with two OCR threads (as on a two-core server) on the local store."""
    settings = StoreSettings(backend="local", local_root=tmp_path / "store")
    async with recall_on(settings, embedder, [ocr_engine, second_engine]) as runtime:
        yield runtime


async def indexed(runtime: RecallRuntime, user: str) -> list[tuple[str, str, str, str]]:
    """Every row of the session in the index: (id, moment, source, text), sorted; duplicates kept."""
    rows = await runtime.index.rows(user, Filters(session_id=SESSION))
    return sorted((r["id"], r["moment_id"], r["source"], r["text"]) for r in rows)


async def one_at_a_time(
    runtime: RecallRuntime, user: str, events: list[pb.Event]
) -> list[tuple[str, str, str, str]]:
    """The reference: each event its own call, read in order on one thread."""
    await EventLog(runtime.service.store).append(user, SESSION, events)
    for event in events:
        await runtime.pipeline.handle(user, SESSION, [event])
    return await indexed(runtime, user)


def drain(queue: asyncio.Queue[list[IndexRow]]) -> list[list[IndexRow]]:
    published = []
    while not queue.empty():
        published.append(queue.get_nowait())
    return published


async def test_a_burst_is_read_at_once_newest_window_first_and_indexed_exactly_once(
    local_recall: RecallRuntime, embedder: Embedder, ocr_engine: OcrEngine, tmp_path: Path, alice: str
) -> None:
    events = burst(time.time_ns() - 3600 * NS_PER_S)
    pipeline = local_recall.pipeline
    await EventLog(local_recall.service.store).append(alice, SESSION, events)
    updates = pipeline.subscribe(alice)
    await pipeline.handle(alice, SESSION, events)

    published = [{row.moment_id for row in rows} for rows in drain(updates)]
    # Window 4, focused last, is committed first; each other window as soon as it is read while
    # others are still being read, the last one with the tracker.
    assert published[0] == {f"{SESSION}.14"}
    windows = [{f"{SESSION}.1", f"{SESSION}.12"}, {f"{SESSION}.5"}, {f"{SESSION}.8"}]
    assert sorted(published[1:], key=sorted) == sorted(windows, key=sorted)
    assert pipeline.stats.frames == 10
    assert pipeline.stats.frames_partial == 1  # the typed line: a band, compared with its own window
    assert pipeline.stats.frames_unchanged == 1  # window 1 again, across two other windows

    # Nothing lost, nothing twice, the same rows and text as reading one event at a time.
    burst_rows = await indexed(local_recall, alice)
    assert len({row[0] for row in burst_rows}) == len(burst_rows)
    reference_store = StoreSettings(backend="local", local_root=tmp_path / "reference")
    async with recall_on(reference_store, embedder, [ocr_engine]) as reference:
        assert burst_rows == await one_at_a_time(reference, alice, events)
    texts = "\n".join(row[3] for row in burst_rows)
    assert all(word in texts for word in ("ALPHABAND", "BETATWO", "GAMMATHREE", "DELTAONE"))
    saved = await local_recall.service.store.get(alice, state_key(SESSION))
    assert b'"rows_ahead": false' in saved and b'"seq": 15' in saved


async def test_a_call_failing_after_a_window_went_ahead_is_redone_without_duplicates(
    local_recall: RecallRuntime, alice: str
) -> None:
    events = burst(time.time_ns() - 3600 * NS_PER_S)
    pipeline, index = local_recall.pipeline, local_recall.index
    await EventLog(local_recall.service.store).append(alice, SESSION, events)
    add = index.add
    calls = 0

    async def failing_last_write(user_id: str, records: list[dict[str, object]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 4:  # the end of the call, after three windows went ahead: a fault injected
            raise OSError("the store went away")
        await add(user_id, records)

    index.add = failing_last_write  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await pipeline.handle(alice, SESSION, events)
    index.add = add  # type: ignore[method-assign]
    ahead = {row[1] for row in await indexed(local_recall, alice)}
    everything = {f"{SESSION}.{seq}" for seq in (1, 5, 8, 12, 14)}
    assert f"{SESSION}.14" in ahead and ahead < everything, "windows went ahead, the last did not"
    assert await pipeline.indexed_seq(alice, SESSION) == 0, "the cursor did not move"

    # The stream delivers the events again: the rows ahead of the cursor go, the batch is redone.
    await pipeline.handle(alice, SESSION, events)
    rows = await indexed(local_recall, alice)
    assert len({row[0] for row in rows}) == len(rows)
    assert {row[1] for row in rows} == everything
    assert await pipeline.indexed_seq(alice, SESSION) == 15


async def test_an_erasure_while_windows_go_ahead_leaves_nothing_of_them(
    recall: RecallRuntime, store_settings: StoreSettings, alice: str
) -> None:
    start = time.time_ns() - 3600 * NS_PER_S
    events = burst(start)
    pipeline = recall.pipeline
    await EventLog(recall.service.store).append(alice, SESSION, events)
    updates = pipeline.subscribe(alice)
    indexing = asyncio.create_task(pipeline.handle(alice, SESSION, events))
    first = await asyncio.wait_for(updates.get(), 120)
    assert {row.moment_id for row in first} == {f"{SESSION}.14"}
    # Window 4 is committed, the others are being read: erase window 2 (beta) and window 4 (delta).
    await recall.service.erase_range(alice, utc(start + 4 * NS_PER_S), utc(start + 7 * NS_PER_S))
    await recall.service.erase_range(alice, utc(start + 13 * NS_PER_S), utc(start + 15 * NS_PER_S))
    await indexing

    texts = "\n".join(row[3] for row in await indexed(recall, alice))
    assert "GAMMATHREE" in texts and "ALPHABAND" in texts, "the rest is indexed"
    objects = space_objects(store_settings, alice)
    assert any(b"gammathree" in data for data in objects.values()), "the scan can see tokens"
    for erased in (b"BETAONE", b"betaone", b"BETATWO", b"betatwo", b"DELTAONE", b"deltaone"):
        for name, data in objects.items():
            assert erased not in data, f"{erased!r} survives in {name}"
    for word in ("DELTAONE", "BETATWO"):
        hits = (await recall.service.search(alice, word)).hits
        assert not [hit for hit in hits if word in "".join(f.text for f in hit.snippet)]
    report = await Consistency(recall.service).check(alice)
    assert report.ok, report
