"""The recall pipeline: committed event batches → moments → OCR and embeddings → the user's index.

Recall is a consumer of the committed stream (``cloud_infer.stream``, registered as ``recall``): the
stream calls ``handle`` with each session's committed events in seq order, one call at a time per
session, while sessions proceed in parallel; it never holds up ingest's acks. OCR and the embedding
model are shared by all users and taken in turns (``cloud_infer.tenancy.fair_pool``), so one user's
flood of frames delays others by at most one frame per OCR thread.

After each call the session's ``MomentTracker`` (including the last seq done) is saved to
``recall/state/<session>.json``, and that seq is Recall's cursor in the stream (``cursors``): what is
indexed has one owner, written together with the rows. A seq at or below it is skipped, so events
delivered again (after a crash) change nothing.

Erasure: rows are added, and the tracker saved, while holding the user's tombstone gate shared
(``recall_store.tombstones``); whatever a tombstone covers is dropped there, so an erasure that ran
while this batch was being read or OCR'd wins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry import metrics, trace

from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.embedder import Embedder, passage_text
from cloud_infer.recall.index import RecallIndex, row_record
from cloud_infer.recall.moments import IndexRow, MomentTracker
from cloud_infer.recall.ocr import FrameReader, FrameText, OcrEngine
from cloud_infer.tenancy.fair_pool import FairPool, Priority
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.errors import ObjectNotFoundError
from recall_store.event_log import EventLog, frame_key
from recall_store.naming import validate_key
from recall_store.store import ObjectStore
from recall_store.tombstones import Tombstones

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
meter = metrics.get_meter(__name__)

_NS_PER_MS = 1_000_000
_LISTENER_QUEUE = 256


def state_key(session_id: str) -> str:
    return validate_key(f"recall/state/{session_id}.json")


@dataclass
class PipelineStats:
    """Counters the benchmarks and tests read (also exported as OpenTelemetry metrics)."""

    frames: int = 0
    frames_unchanged: int = 0  # identical to the moment's previous frame: no OCR at all
    frames_partial: int = 0  # only a changed band was OCR'd
    rows_per_frame_read: float = 0.0  # sum of read fractions (rows of pixels OCR'd / frame height)
    ocr_seconds: float = 0.0
    rows: int = 0


@dataclass
class _Session:
    user_id: str
    session_id: str
    reader: FrameReader
    tracker: MomentTracker | None = None


class TrackerCursors:
    """Recall's cursors in the committed stream: the seq of each session's saved moment state."""

    def __init__(self, pipeline: RecallPipeline) -> None:
        self._pipeline = pipeline

    async def load(self, user_id: str, session_id: str) -> int:
        return await self._pipeline.indexed_seq(user_id, session_id)

    async def save(self, user_id: str, session_id: str, seq: int) -> None:
        await self._pipeline.skip_to(user_id, session_id, seq)


class RecallPipeline:
    def __init__(
        self,
        settings: RecallSettings,
        store: ObjectStore,
        index: RecallIndex,
        embedder: Embedder,
        ocr_engines: Sequence[OcrEngine],
        tombstones: Tombstones,
    ) -> None:
        self._settings = settings
        self._store = store
        self._log = EventLog(store)
        self._index = index
        self._embedder = embedder
        self._engines = list(ocr_engines)
        self._ocr = FairPool("ocr", workers=len(self._engines), nice=10)  # indexing yields to searches
        self._tombstones = tombstones
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._listeners: dict[str, set[asyncio.Queue[list[IndexRow]]]] = {}
        self._rows_since_optimize: dict[str, int] = {}
        self._optimizing: dict[str, asyncio.Task[None]] = {}
        self.stats = PipelineStats()
        self.cursors = TrackerCursors(self)
        self._frames = meter.create_counter("shadowdesk.recall.frames", description="Frames seen by OCR")
        self._frames_skipped = meter.create_counter(
            "shadowdesk.recall.frames_unchanged", description="Frames skipped because nothing changed"
        )

    async def handle(self, user_id: str, session_id: str, events: Sequence[pb.Event]) -> None:
        """Index committed events of one session, in seq order (the stream calls it, one at a time).

        Events at or below the saved seq are skipped. On any failure the in-memory state is dropped
        (the saved one is read again) and the error raised, so the stream can retry the same events.
        """
        session = self._session(user_id, session_id)
        try:
            await self._process(session, events)
        except BaseException:  # cancelled too: the tracker may hold events whose rows were not written
            session.tracker = None
            raise

    async def skip_to(self, user_id: str, session_id: str, seq: int) -> None:
        """Record the session as taken in up to ``seq`` though no event came (the log holds none there)."""
        session = self._session(user_id, session_id)
        tracker = session.tracker or await self._stored_tracker(user_id, session_id)
        if tracker.seq < seq:
            tracker.skip(seq)
            async with self._tombstones.writing(user_id) as dead:
                tracker.forget(dead)
                await self._store.put(user_id, state_key(session_id), tracker.to_json(), "application/json")
        session.tracker = tracker

    def _session(self, user_id: str, session_id: str) -> _Session:
        key = (user_id, session_id)
        session = self._sessions.get(key)
        if session is None:
            engine = self._engines[hash(key) % len(self._engines)]
            session = self._sessions[key] = _Session(user_id, session_id, FrameReader(engine))
        return session

    def subscribe(self, user_id: str) -> asyncio.Queue[list[IndexRow]]:
        """A queue receiving the user's newly indexed rows (for live sidebar updates)."""
        queue: asyncio.Queue[list[IndexRow]] = asyncio.Queue(_LISTENER_QUEUE)
        self._listeners.setdefault(user_id, set()).add(queue)
        return queue

    def unsubscribe(self, user_id: str, queue: asyncio.Queue[list[IndexRow]]) -> None:
        self._listeners.get(user_id, set()).discard(queue)

    def reset_user(self, user_id: str) -> None:
        """Forget in-memory moment state of the user's sessions (after erasure)."""
        for (uid, _), session in self._sessions.items():
            if uid == user_id:
                session.tracker = None

    async def indexed_seq(self, user_id: str, session_id: str) -> int:
        """The last seq of the session the index has taken in (0: none)."""
        session = self._sessions.get((user_id, session_id))
        if session is not None and session.tracker is not None:
            return session.tracker.seq
        return (await self._stored_tracker(user_id, session_id)).seq

    async def forget_erased(self, user_id: str) -> None:
        """Apply the user's tombstones to every saved moment state (call while erasing)."""
        dead = await self._tombstones.current(user_id)
        for key in await self._store.list_keys(user_id, "recall/state/"):
            tracker = MomentTracker.from_json(await self._store.get(user_id, key))
            if tracker.forget(dead):
                await self._store.put(user_id, key, tracker.to_json(), "application/json")
        self.reset_user(user_id)

    async def close(self) -> None:
        tasks = list(self._optimizing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._ocr.close()

    async def _process(self, session: _Session, events: Sequence[pb.Event]) -> None:
        with tracer.start_as_current_span("recall.index_batch") as span:
            user_id = session.user_id
            tracker = session.tracker or await self._stored_tracker(user_id, session.session_id)
            dead = await self._tombstones.current(user_id)
            rows: list[IndexRow] = []
            for event in events:
                if event.seq <= tracker.seq:
                    continue
                if dead.covers_event(session.session_id, event):
                    tracker.skip(event.seq)  # erased while it waited: not even its frame is read
                    continue
                row = await self._row(session, tracker, event)
                if row is not None:
                    rows.append(row)
            vectors = await self._embedder.encode(
                user_id, [passage_text(r.title, r.text) for r in rows], Priority.BACKGROUND
            )
            async with self._tombstones.writing(user_id) as dead:
                kept = [
                    (row, vector)
                    for row, vector in zip(rows, vectors, strict=True)
                    if not dead.covers(row.session_id, row.seq, row.time_ms)
                ]
                tracker.forget(dead)
                if kept:
                    # Tokenizing and copying vectors of a large chunk takes a while: off the event loop.
                    records = await asyncio.to_thread(lambda: [row_record(r, v) for r, v in kept])
                    await self._index.add(user_id, records)
                await self._store.put(
                    user_id, state_key(session.session_id), tracker.to_json(), "application/json"
                )
            rows = [row for row, _ in kept]
            session.tracker = tracker
            self.stats.rows += len(rows)
            span.set_attribute("shadowdesk.recall.rows", len(rows))
            if rows:
                self._publish(session.user_id, rows)
                self._maybe_optimize(session.user_id, len(rows))

    async def _stored_tracker(self, user_id: str, session_id: str) -> MomentTracker:
        try:
            data = await self._store.get(user_id, state_key(session_id))
        except ObjectNotFoundError:
            return MomentTracker(session_id, int(self._settings.moment_max_span_s * 1000))
        return MomentTracker.from_json(data)

    async def _row(self, session: _Session, tracker: MomentTracker, event: pb.Event) -> IndexRow | None:
        time_ms = event.time_unix_nano // _NS_PER_MS
        kind = event.WhichOneof("kind")
        if kind == "window_focus":
            focus = event.window_focus
            return tracker.focus(
                event.seq, time_ms, focus.window_id, focus.app_id, focus.title, focus.private
            )
        if kind == "frame":
            return await self._frame_row(session, tracker, event, time_ms)
        if kind == "text":
            snapshot = event.text
            if tracker.app_id and snapshot.app_id and snapshot.app_id != tracker.app_id:
                tracker.skip(event.seq)
                return None
            return tracker.content(event.seq, time_ms, "accessibility", snapshot.text.splitlines())
        if kind == "url":
            return tracker.url(event.seq, time_ms, event.url.url, event.url.title)
        if kind == "clipboard":
            return tracker.content(event.seq, time_ms, "clipboard", event.clipboard.text.splitlines())
        tracker.skip(event.seq)
        return None

    async def _frame_row(
        self, session: _Session, tracker: MomentTracker, event: pb.Event, time_ms: int
    ) -> IndexRow | None:
        frame = event.frame
        if not tracker.moment_id or frame.window_id != tracker.window_id:
            tracker.skip(event.seq)
            return None
        key = frame.stored_key or frame_key(session.session_id, event.seq, frame.mime_type)
        try:
            image = frame.image or await self._log.frame(session.user_id, key)
        except ObjectNotFoundError:
            tracker.skip(event.seq)  # erased since it was committed
            return None
        started = time.perf_counter()
        text: FrameText = await self._ocr.run(
            session.user_id, Priority.BACKGROUND, session.reader.read, tracker.moment_id, image
        )
        stats = self.stats
        stats.ocr_seconds += time.perf_counter() - started
        stats.frames += 1
        stats.rows_per_frame_read += text.read_fraction
        self._frames.add(1)
        if text.read_fraction == 0.0:
            stats.frames_unchanged += 1
            self._frames_skipped.add(1)
        elif text.read_fraction < 1.0:
            stats.frames_partial += 1
        return tracker.content(
            event.seq,
            time_ms,
            "screen",
            [box.text for box in text.boxes],
            frame=(key, frame.width, frame.height, text.boxes),
        )

    def _publish(self, user_id: str, rows: list[IndexRow]) -> None:
        for queue in self._listeners.get(user_id, ()):
            if not queue.full():
                queue.put_nowait(rows)

    def _maybe_optimize(self, user_id: str, added: int) -> None:
        count = self._rows_since_optimize.get(user_id, 0) + added
        running = self._optimizing.get(user_id)
        if count < self._settings.compact_every_rows or (running is not None and not running.done()):
            self._rows_since_optimize[user_id] = count
            return
        self._rows_since_optimize[user_id] = 0
        self._optimizing[user_id] = asyncio.create_task(
            self._optimize(user_id), name=f"recall-optimize-{user_id}"
        )

    async def _optimize(self, user_id: str) -> None:
        try:
            await self._index.optimize(user_id, self._settings.vector_index_min_rows)
        except Exception:
            logger.exception("optimizing the recall index of a user failed; rows stay searchable unindexed")
