"""Erasure is final: raced against in-flight indexing and replayed batches, repeatedly, on both stores.

Erase-range: each round sends a batch with a unique canary (in a title, accessibility text and on a
screen frame) through the real gRPC ingest server, erases its time range while the pipeline is still
indexing it (after a varying delay), then replays the batch and sends a late batch captured in the
same range.

Forget-moment: each round opens a moment with a canary title, waits until the index holds it (a moment
is forgotten by its id), sends the rest of the moment (canary text and frame), forgets the moment while
that rest is still being indexed (after a varying delay), then replays the whole moment. Events after
a forgotten moment are new sightings (``RecallService.forget_moment``), so there is no late batch here.

In the end no object in the user's space (segments, frames, LanceDB files, moment state) and no entry
of the export holds any canary, search finds none, only the control's frame is left, and the
consistency check is clean; a control canary never erased is found by the same scans, so they can fail.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import pytest

from cloud_infer.config import ServerSettings
from cloud_infer.recall.export import export_zip
from cloud_infer.recall.index import Filters
from cloud_infer.recall.reconcile import Consistency
from cloud_infer.recall.runtime import RecallRuntime
from cloud_infer.server import create_grpc_server, ingest_service
from cloud_infer.stream import Fanout, StreamSettings
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.config import StoreSettings
from recall_store.directory import UserDirectory
from recall_store.event_log import EventLog
from tests.support.cloud import AgentStream, ingest_token, wait_for
from tests.support.recall import focus, frame, space_objects, utc
from tests.support.screens import screen

pytestmark = pytest.mark.slow

SESSION = "desk-race"
NS_PER_S = 1_000_000_000
ROUNDS = 6


@dataclass
class Wired:
    recall: RecallRuntime
    stream: Fanout
    target: str
    user: str

    async def send(self, *batches: list[pb.Event]) -> list[int]:
        """The batches on a fresh stream (each round reconnects, as an agent does after a lost ack)."""
        agent = AgentStream(self.target, ingest_token(self.user, SESSION))
        try:
            await agent.open(self.user, SESSION)
            return [await agent.ack(events) for events in batches]
        finally:
            await agent.close()


@pytest.fixture
async def wired(recall: RecallRuntime, settings: ServerSettings, alice: str) -> AsyncIterator[Wired]:
    """The ingest server as ``serve`` wires it: sharing Recall's tombstones, its stream feeding Recall."""
    store = recall.service.store
    stream = Fanout(StreamSettings(), EventLog(store), UserDirectory(store))
    recall.consume(stream)
    stream.start()
    service = ingest_service(settings, store, tombstones=recall.service.tombstones, stream=stream)
    server, port = await create_grpc_server(settings, service)
    yield Wired(recall, stream, f"127.0.0.1:{port}", alice)
    await server.stop(None)
    await stream.close()


def text(seq: int, t: int, body: str) -> pb.Event:
    return pb.Event(
        seq=seq,
        time_unix_nano=t,
        text=pb.TextSnapshot(window_id=7, app_id="mousepad", source="atspi", text=body),
    )


def round_events(seq: int, t: int, canary: str) -> list[pb.Event]:
    return [
        focus(seq, t, 7, "mousepad", f"Notes {canary}"),
        text(seq + 1, t + NS_PER_S, f"the code is {canary}\nkeep it secret"),
        frame(seq + 2, t + 2 * NS_PER_S, 7, screen([f"Code {canary}", "keep it secret"])),
    ]


async def in_index(recall: RecallRuntime, user: str, moment_id: str) -> bool:
    return bool(await recall.service.index.rows(user, Filters(moment_id=moment_id)))


async def export_entries(recall: RecallRuntime, user: str) -> dict[str, bytes]:
    """Every entry of the user's export zip, decompressed."""
    data = b"".join([chunk async for chunk in export_zip(recall.service, user)])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


async def send_control(wired: Wired, seq: int, t: int, control: str) -> str:
    """A moment never erased; returns its frame's key once it is all indexed."""
    assert await wired.send(round_events(seq, t, control)) == [seq + 2]
    await wired.stream.idle()
    return f"frames/{SESSION}/{seq + 2:012d}.webp"


async def assert_nothing_left(
    wired: Wired, store_settings: StoreSettings, canaries: list[str], control: str, control_frame: str
) -> None:
    """No canary in search, the export or any object's bytes; only the control's frame; consistent."""
    recall, user = wired.recall, wired.user
    for canary in canaries:
        found = (await recall.service.search(user, canary)).hits
        assert not [hit for hit in found if canary in hit.title + "".join(f.text for f in hit.snippet)]
    kept = (await recall.service.search(user, control)).hits
    assert kept and control in kept[0].title, "the control must be searchable"

    exported = await export_entries(recall, user)
    assert control.encode() in exported["events.jsonl"], "the export scan can see text"
    for name, data in exported.items():
        for canary in canaries:
            assert canary.encode() not in data, f"{canary} survives in the export's {name}"
    assert sorted(name for name in exported if name.startswith("frames/")) == [control_frame]

    objects = space_objects(store_settings, user)
    assert any(control.encode() in data for data in objects.values()), "the scan can see text"
    for name, data in objects.items():
        for canary in canaries:
            assert canary.encode() not in data, f"{canary} survives in {name}"
    frames = sorted(name for name in objects if name.startswith("frames/"))
    assert frames == [control_frame], "only the control's frame"

    report = await Consistency(recall.service).check(user)
    assert report.ok, report
    assert report.pending_erasures == 0 and report.erased_leftovers == 0


async def test_erasure_racing_indexing_and_replays_leaves_nothing(
    wired: Wired, store_settings: StoreSettings, alice: str
) -> None:
    recall = wired.recall
    rng = random.Random(20261202)
    start = time.time_ns() - 2 * 3600 * NS_PER_S
    canaries = []
    for n in range(ROUNDS):
        canary = f"CANARY{n}Q{rng.randrange(10**6):06d}"
        canaries.append(canary)
        seq, t = 1 + 10 * n, start + n * 60 * NS_PER_S
        events = round_events(seq, t, canary)
        assert await wired.send(events) == [seq + 2]
        await asyncio.sleep(rng.uniform(0.0, 0.4))  # erase at a different point of the indexing each time
        await recall.service.erase_range(alice, utc(t - NS_PER_S), utc(t + 10 * NS_PER_S))
        # The agent replays its spool (a lost ack) and delivers a late batch captured in the range.
        late = [text(seq + 5, t + 5 * NS_PER_S, f"late copy of {canary}")]
        assert await wired.send(events, late) == [seq + 2, seq + 5]

    control = "KEEPME" + str(rng.randrange(10**6))
    control_frame = await send_control(wired, 1 + 10 * ROUNDS, start + ROUNDS * 60 * NS_PER_S, control)
    await assert_nothing_left(wired, store_settings, canaries, control, control_frame)


async def test_forgetting_a_moment_racing_indexing_and_replays_leaves_nothing(
    wired: Wired, store_settings: StoreSettings, alice: str
) -> None:
    recall = wired.recall
    rng = random.Random(20261203)
    start = time.time_ns() - 2 * 3600 * NS_PER_S
    canaries = []
    for n in range(ROUNDS):
        canary = f"FORGET{n}Q{rng.randrange(10**6):06d}"
        canaries.append(canary)
        seq, t = 1 + 10 * n, start + n * 60 * NS_PER_S
        events = round_events(seq, t, canary)
        # Each round's moment in a window of its own, so each is a moment of its own.
        events[0].window_focus.window_id = events[2].frame.window_id = 100 + n
        opening, rest = events[:1], events[1:]
        moment_id = f"{SESSION}.{seq}"
        assert await wired.send(opening) == [seq]
        await wait_for(partial(in_index, recall, alice, moment_id), timeout_s=30)
        assert await wired.send(rest) == [seq + 2]
        await asyncio.sleep(rng.uniform(0.0, 0.4))  # forget at a different point of the indexing each time
        forgotten = await recall.service.forget_moment(alice, moment_id)
        assert forgotten.deleted_rows >= 1
        # The agent replays its spool (lost acks): the whole moment again, on a fresh stream; each batch
        # is acked with the session's high-water mark, which the erasure kept.
        assert await wired.send(opening, rest) == [seq + 2, seq + 2]

    control = "KEEPME" + str(rng.randrange(10**6))
    control_frame = await send_control(wired, 1 + 10 * ROUNDS, start + ROUNDS * 60 * NS_PER_S, control)
    await assert_nothing_left(wired, store_settings, canaries, control, control_frame)
