"""EventLog over the real backends: commit order, last_seq, time-ranged reads, frames."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store import InvalidNameError, ObjectNotFoundError, StoreSettings, open_store
from recall_store.event_log import EventLog
from tests.support.cloud import NS, FaultyStore, focus, frame, metrics, png

T0 = 1_760_000_000 * NS


@pytest.fixture
async def store(store_settings: StoreSettings) -> AsyncIterator[FaultyStore]:
    faulty = FaultyStore(open_store(store_settings))
    yield faulty
    await faulty.close()


@pytest.fixture
def user() -> str:
    return f"log-{uuid.uuid4().hex[:10]}"


async def test_append_writes_frames_then_a_segment_named_by_seq_and_time(
    store: FaultyStore, user: str
) -> None:
    log = EventLog(store)
    image = png(color=(9, 9, 9))
    events = [focus(1, T0 + 5_000_000), frame(2, T0 + 7_000_000, image, mime="image/png"), metrics(3, T0)]
    await log.append(user, "desk-1", events)
    assert await store.list_keys(user) == [
        "events/desk-1/000000000001-000000000003.1760000000000-1760000000007.pb",
        "frames/desk-1/000000000002.png",
    ]
    assert await log.frame(user, "frames/desk-1/000000000002.png") == image
    # The caller's events are not modified; the stored copy carries the key instead of the bytes.
    assert events[1].frame.image == image
    stored = pb.EventBatch.FromString(
        await store.get(user, "events/desk-1/000000000001-000000000003.1760000000000-1760000000007.pb")
    )
    assert stored.events[1].frame.image == b""
    assert stored.events[1].frame.stored_key == "frames/desk-1/000000000002.png"


async def test_session_heads_and_reading_segments_after_a_seq(store: FaultyStore, user: str) -> None:
    log = EventLog(store)
    assert await log.session_heads(user) == {}
    await log.append(user, "desk-1", [metrics(1, T0), metrics(2, T0)])
    await log.append(user, "desk-1", [metrics(5, T0), metrics(6, T0), metrics(7, T0)])
    await log.append(user, "desk-1", [metrics(9, T0)])
    await log.append(user, "desk-10", [metrics(30, T0)])
    assert await log.session_heads(user) == {"desk-1": 9, "desk-10": 30}

    segments = await log.segments(user, "desk-1", after_seq=5)
    assert [(s.first_seq, s.last_seq) for s in segments] == [(5, 7), (9, 9)]
    read = await log.read_segments(user, segments, after_seq=5, through_seq=7)
    assert [e.seq for e in read] == [6, 7]
    await store.delete(user, [segments[0].key])  # erased since it was listed: holds nothing
    assert [e.seq for e in await log.read_segments(user, segments, 0, 100)] == [9]


async def test_last_seq_per_session(store: FaultyStore, user: str) -> None:
    log = EventLog(store)
    assert await log.last_seq(user, "desk-1") == 0
    await log.append(user, "desk-1", [metrics(1, T0), metrics(2, T0)])
    await log.append(user, "desk-1", [metrics(9, T0)])
    await log.append(user, "desk-10", [metrics(30, T0)])  # a session id that extends another's
    assert await log.last_seq(user, "desk-1") == 9
    assert await log.last_seq(user, "desk-10") == 30
    assert await log.last_seq(user, "desk-2") == 0


async def test_a_failed_segment_write_stores_nothing_readable(store: FaultyStore, user: str) -> None:
    log = EventLog(store)
    store.down = True
    with pytest.raises(Exception, match="injected outage"):
        await log.append(user, "desk-1", [metrics(1, T0)])
    store.down = False
    assert await log.last_seq(user, "desk-1") == 0
    assert await log.read(user, 0, 2 * T0) == []


async def test_read_merges_sessions_in_time_order_and_skips_segments_by_name(
    store: FaultyStore, user: str
) -> None:
    log = EventLog(store)
    await log.append(user, "desk-a", [metrics(1, T0), metrics(2, T0 + 2 * NS)])
    await log.append(user, "desk-b", [metrics(1, T0 + NS), metrics(2, T0 + 3 * NS)])
    await log.append(user, "desk-a", [metrics(3, T0 + 100 * NS)])  # far later: must not be opened
    store.gets.clear()

    events = await log.read(user, T0, T0 + 3 * NS)
    assert [(e.session_id, e.event.seq) for e in events] == [("desk-a", 1), ("desk-b", 1), ("desk-a", 2)]
    assert len(store.gets) == 2
    assert all("000000000003" not in key for key in store.gets)
    assert await log.read(user, T0 + 200 * NS, T0 + 300 * NS) == []
    assert await log.read(f"{user}-nobody", T0, T0 + NS) == []


async def test_overlapping_segments_yield_each_event_once(store: FaultyStore, user: str) -> None:
    log = EventLog(store)
    await log.append(user, "desk-1", [metrics(1, T0), metrics(2, T0 + 1)])
    await log.append(user, "desk-1", [metrics(2, T0 + 1), metrics(3, T0 + 2)])
    assert [e.event.seq for e in await log.read(user, T0, T0 + NS)] == [1, 2, 3]


async def test_frame_refuses_keys_that_are_not_frames(store: FaultyStore, user: str) -> None:
    log = EventLog(store)
    await log.append(user, "desk-1", [metrics(1, T0)])
    for key in [
        "events/desk-1/000000000001-000000000001.1760000000000-1760000000000.pb",
        "../x",
        "frames/a/b.png",
    ]:
        with pytest.raises(InvalidNameError):
            await log.frame(user, key)
    with pytest.raises(ObjectNotFoundError):
        await log.frame(user, "frames/desk-1/000000000005.webp")
    with pytest.raises(InvalidNameError, match="mime type"):
        await log.append(user, "desk-1", [frame(2, T0, mime="image/gif")])
