"""The recall pipeline and search on each real store backend, with the real OCR and embedding models."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.factory import open_gateway
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall import service
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.embedder import Embedder
from cloud_infer.recall.ocr import OcrEngine
from cloud_infer.recall.rewrite import checked_keywords
from cloud_infer.recall.runtime import RecallRuntime, open_recall
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.config import StoreSettings
from recall_store.event_log import EventLog
from recall_store.factory import open_store
from tests.support.recall import (
    NS_PER_S,
    SESSION,
    day,
    ingest,
    space_objects,
    utc,
)


async def test_search_finds_the_right_moment_in_english_and_chinese(
    recall: RecallRuntime, alice: str
) -> None:
    start = time.time_ns() - 3600 * NS_PER_S
    await ingest(recall, alice, day(start))

    invoice = await recall.service.search(alice, "invoice total due")
    assert invoice.hits[0].app_id == "chromium"
    assert invoice.hits[0].moment_id == f"{SESSION}.1"
    assert any(f.hit for f in invoice.hits[0].snippet)
    assert invoice.hits[0].frame_url == f"/v1/frames/{SESSION}/000000000002.webp"
    assert invoice.hits[0].boxes and all(b.hit for b in invoice.hits[0].boxes)

    kafka = await recall.service.search(alice, "kafka retention")
    assert kafka.hits[0].moment_id == f"{SESSION}.4"

    chinese = await recall.service.search(alice, "报销金额是多少")
    assert chinese.hits[0].moment_id == f"{SESSION}.6"
    assert "报销" in "".join(f.text for f in chinese.hits[0].snippet if f.hit)

    only_xterm = await recall.service.search(alice, "invoice", app="xterm")
    assert all(hit.app_id == "xterm" for hit in only_xterm.hits)

    assert recall.pipeline.stats.frames == 4
    assert recall.pipeline.stats.frames_unchanged == 1


async def test_users_never_see_each_other(recall: RecallRuntime, alice: str) -> None:
    await ingest(recall, alice, day(time.time_ns() - 3600 * NS_PER_S))
    assert (await recall.service.search(f"bob-{alice}", "invoice")).hits == []
    assert (await recall.service.search(alice, "invoice")).hits


async def test_a_date_ranks_and_filters_only_when_asked_to(recall: RecallRuntime, alice: str) -> None:
    two_days_ago = time.time_ns() - 2 * 86400 * NS_PER_S
    await ingest(recall, alice, day(two_days_ago))
    # Seen two days ago, not today: ranked lower, never emptied by the date.
    found = await recall.service.search(alice, "invoice today", tz="UTC")
    assert found.query.dates == "both" and found.hits
    assert (await recall.service.search(alice, "invoice today", tz="UTC", dates="seen")).hits == []
    assert (await recall.service.search(alice, "invoice in the last 3 days", tz="UTC", dates="seen")).hits
    # A date alone is when it was seen: there is nothing else to rank.
    assert (await recall.service.search(alice, "today", tz="UTC")).query.dates == "seen"
    # A phrase naming the future is content, not a filter: history holds no future.
    tomorrow = await recall.service.search(alice, "invoice tomorrow", tz="UTC")
    assert tomorrow.query.start is None and tomorrow.hits


async def test_every_reading_of_an_ambiguous_day_is_searched(recall: RecallRuntime, alice: str) -> None:
    # Seen on a Wednesday noon; asked nine days later, on a Friday, where "last Wednesday" is two days
    # ago to some and that Wednesday to others.
    wednesday = datetime(2026, 11, 11, 12, tzinfo=UTC)
    await ingest(recall, alice, day(int(wednesday.timestamp()) * NS_PER_S))
    friday = wednesday + timedelta(days=9, hours=5)

    found = await recall.service.search(alice, "invoice last Wednesday", tz="UTC", now=friday, dates="seen")
    assert found.query.start == datetime(2026, 11, 18, tzinfo=UTC)  # the likelier reading is shown
    assert found.hits and found.hits[0].moment_id == f"{SESSION}.1"
    assert (await recall.service.search(alice, "invoice 上周三", tz="UTC", now=friday, dates="seen")).hits
    unambiguous = await recall.service.search(
        alice, "invoice last Thursday", tz="UTC", now=friday, dates="seen"
    )
    assert unambiguous.hits == []
    ranked = await recall.service.search(alice, "invoice I looked at last Wednesday", tz="UTC", now=friday)
    assert ranked.query.dates == "both" and ranked.hits[0].moment_id == f"{SESSION}.1"


async def test_erasure_removes_events_frames_and_index_rows(recall: RecallRuntime, alice: str) -> None:
    store = recall.service.store
    start = time.time_ns() - 3600 * NS_PER_S
    await ingest(recall, alice, day(start))

    forgotten = await recall.service.forget_moment(alice, f"{SESSION}.1")
    assert forgotten.deleted_rows >= 2
    hits = (await recall.service.search(alice, "invoice INV-2041")).hits
    assert all(hit.moment_id != f"{SESSION}.1" for hit in hits)
    frames = await store.list_keys(alice, prefix="frames/")
    assert f"frames/{SESSION}/000000000002.webp" not in frames
    assert f"frames/{SESSION}/000000000005.webp" in frames

    everything = await recall.service.erase_everything(alice)
    assert everything.deleted_objects > 0
    # Left: the tombstones that keep it erased (no content), nothing of the history.
    assert await store.list_keys(alice) == ["erasure/tombstones.json"]
    assert (await recall.service.search(alice, "kafka")).hits == []


async def test_forgetting_the_newest_moment_spares_the_next_one_not_yet_indexed(
    recall: RecallRuntime, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = recall.service.store
    events = day(time.time_ns() - 3600 * NS_PER_S)
    invoice, kafka, notes = events[:3], events[3:5], events[5:]
    await ingest(recall, alice, invoice)
    # The kafka window's moment is stored but not indexed yet (the pipeline is behind, e.g. on OCR).
    await EventLog(store).append(alice, SESSION, kafka)

    async def catching_up() -> None:
        await asyncio.sleep(0.5)
        await recall.pipeline.handle(alice, SESSION, kafka)

    behind = asyncio.create_task(catching_up())
    forgotten = await recall.service.forget_moment(alice, f"{SESSION}.1")
    await behind
    assert forgotten.deleted_rows >= 2
    frames = await store.list_keys(alice, prefix="frames/")
    assert f"frames/{SESSION}/000000000002.webp" not in frames
    assert f"frames/{SESSION}/000000000005.webp" in frames
    assert [hit.moment_id for hit in (await recall.service.search(alice, "kafka retention")).hits] == [
        f"{SESSION}.4"
    ]
    # An index that does not catch up in time: the stored events go too (privacy first).
    monkeypatch.setattr(service, "_CATCH_UP_S", 0.2)
    await EventLog(store).append(alice, SESSION, notes)
    await recall.service.forget_moment(alice, f"{SESSION}.4")
    frames = await store.list_keys(alice, prefix="frames/")
    assert f"frames/{SESSION}/000000000005.webp" not in frames
    assert f"frames/{SESSION}/000000000007.webp" not in frames


async def test_erased_text_survives_nowhere_in_the_users_space(
    recall: RecallRuntime, store_settings: StoreSettings, alice: str
) -> None:
    start = time.time_ns() - 3600 * NS_PER_S
    await ingest(recall, alice, day(start))
    await recall.service.erase_range(alice, utc(start + 50 * NS_PER_S), utc(start + 90 * NS_PER_S))
    assert (await recall.service.search(alice, "kafka retention")).hits == []
    assert (await recall.service.search(alice, "invoice")).hits
    objects = space_objects(store_settings, alice)
    assert any(name.startswith("index/") for name in objects)
    for name, data in objects.items():
        assert b"Kafka" not in data and b"kafka" not in data and b"broker" not in data, name


async def test_retention_erases_by_age_and_by_size(recall: RecallRuntime, alice: str) -> None:
    now = time.time_ns()
    old, recent = now - 40 * 86400 * NS_PER_S, now - 3600 * NS_PER_S
    await ingest(recall, alice, day(old))
    later = [pb.Event() for _ in day(old)]
    for fresh, original in zip(later, day(old), strict=True):
        fresh.CopyFrom(original)  # the same day again, an hour ago
        fresh.seq, fresh.time_unix_nano = original.seq + 100, original.time_unix_nano - old + recent
    await ingest(recall, alice, later)
    privacy = recall.privacy
    settings = await privacy.get(alice)

    await privacy.put(alice, settings.model_copy(update={"retention_days": 30}))
    assert await recall.retention.enforce(alice) > 0
    hits = (await recall.service.search(alice, "invoice INV-2041")).hits
    assert hits and all(hit.time.timestamp() * NS_PER_S > now - 30 * 86400 * NS_PER_S for hit in hits)

    await privacy.put(alice, settings.model_copy(update={"retention_days": None, "retention_max_bytes": 1}))
    await recall.retention.enforce(alice)
    assert (await recall.service.search(alice, "invoice INV-2041")).hits == []


async def test_a_rewrite_only_adds_checked_words_from_a_capable_model(
    tmp_path: Path, embedder: Embedder, ocr_engine: OcrEngine, alice: str
) -> None:
    # The rewrite does not depend on the store backend: the local one is enough here.
    store_settings = StoreSettings(backend="local", local_root=tmp_path / "store")
    store = open_store(store_settings)
    default, capable = (
        open_gateway(LLMSettings(backend="embedded")),
        open_gateway(LLMSettings(backend="embedded", capable=True)),
    )
    ocr = ocr_engine
    runtimes = [
        open_recall(RecallSettings(), store_settings, store, PrivacyService(store), llm, embedder, [ocr])
        for llm in (default, capable)
    ]
    try:
        await ingest(runtimes[0], alice, day(time.time_ns() - 3600 * NS_PER_S))
        for runtime in runtimes:
            found = await runtime.service.search(alice, "invoice total")
            assert found.hits and found.query.rewritten is None, "a query with hits is never rewritten"
            # The default model is not asked; the capable one is, and whatever it says about nonsense
            # shares no word with it, so the search stays the query's own.
            vague = await runtime.service.search(alice, "qwxz plorf")
            assert vague.query.rewritten is None and vague.query.terms == ["qwxz", "plorf"]
    finally:
        for runtime in runtimes:
            await runtime.close()
        await default.close()
        await capable.close()
        await store.close()


@pytest.mark.parametrize(
    ("query", "answer", "kept"),
    [
        ("paying the consultants", "consultants invoice payment", "consultants invoice payment"),
        ("报销 发票", "发票, 报销单, 金额", "发票 报销 单 金额"),
        ("invoice", "The weather is nice today.", ""),  # another subject
        ("invoice total", "invoice total", ""),  # nothing added
        ("qwxz plorf", "Sure! Here are some keywords: apple banana", ""),
    ],
)
def test_a_suggestion_must_share_a_word_with_the_query_and_add_one(
    query: str, answer: str, kept: str
) -> None:
    assert checked_keywords(query, answer) == kept
