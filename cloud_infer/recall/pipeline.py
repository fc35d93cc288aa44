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

Bursts: a call may carry many frames (a burst, or a session catching up). A dry run of the tracker
(frames read as empty: which frames are read, and in which moment, does not depend on their text)
groups the frames to read by window and finds the batch's moments. The windows are OCR'd at once on
the OCR threads, each window's frames in order (its reader diffs against that window's previous
frame), the newest focused window first. As soon as a window is read while others are still being
read, the rows of its moments are committed ahead of the rest: a moment's rows depend only on the
tracker before its first event (a moment that opens starts afresh), which the dry run kept. Before the
first such commit the tracker is saved as it was with ``rows_ahead`` set, so a call that fails after it
deletes the rows above its saved seq before the batch is redone: the cursor stays the one owner of what
is indexed. The rest, and the tracker, are committed together at the end as usual.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from queue import SimpleQueue

from opentelemetry import metrics, trace

from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.embedder import Embedder, passage_text
from cloud_infer.recall.index import Filters, RecallIndex, row_record
from cloud_infer.recall.moments import IndexRow, MomentTracker
from cloud_infer.recall.ocr import FrameReader, FrameText, LastFrame, OcrEngine
from cloud_infer.tenancy.fair_pool import FairPool, Priority
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.errors import ObjectNotFoundError
from recall_store.event_log import EventLog, frame_key
from recall_store.naming import validate_key
from recall_store.store import ObjectStore
from recall_store.tombstones import Tombstones, TombstoneSet

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
meter = metrics.get_meter(__name__)

_NS_PER_MS = 1_000_000
_LISTENER_QUEUE = 256
_UNREAD = FrameText((), 1.0)  # a frame's text in the dry run

# How a frame event's text is had: (event, track) -> its text, or None when the frame is gone.
FrameSource = Callable[[pb.Event, str], FrameText | None]


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


@dataclass
class _Segment:
    """Consecutive events of the batch in one moment, and the tracker as it was before them."""

    window: str  # the moment's window ("": no moment open)
    first: int  # index of its first event in the batch
    stop: int
    start: MomentTracker


@dataclass
class _Plan:
    """What a batch's dry run tells before any OCR."""

    groups: list[tuple[str, list[pb.Event]]]  # frames to read per window, the newest focused first
    segments: list[_Segment]


@dataclass
class _Run:
    """Frames of one window to read in order; runs of a window can be read at once."""

    window: str
    frames: list[tuple[pb.Event, bytes | None]]  # image None: erased since it was committed
    first: bool  # follows the window's last frame read before
    last: bool  # ends with the window's newest frame


@dataclass
class _Ahead:
    """Rows of a batch committed before the batch is done (each window's once its frames are read)."""

    start: MomentTracker  # the session's tracker before the batch: saved with ``rows_ahead`` first
    rows: list[IndexRow] = field(default_factory=list)
    marked: bool = False
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)


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
        # One engine per OCR thread: a call takes an idle one (there always is one) and puts it back.
        self._engines: SimpleQueue[OcrEngine] = SimpleQueue()
        for engine in ocr_engines:
            self._engines.put(engine)
        self._ocr_workers = len(ocr_engines)
        self._ocr = FairPool("ocr", workers=self._ocr_workers, nice=10)  # indexing yields to searches
        self._default_engine = ocr_engines[0]
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
        tracker = await self._tracker(session)
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
            session = self._sessions[key] = _Session(user_id, session_id, FrameReader(self._default_engine))
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
            user_id, session_id = session.user_id, session.session_id
            # A copy: the session's own tracker moves on once the batch's rows are written, so
            # ``indexed_seq`` never counts events whose rows are not in the index yet.
            tracker = (await self._tracker(session)).copy()
            dead = await self._tombstones.current(user_id)
            todo = [event for event in events if event.seq > tracker.seq]
            plan = self._plan(session_id, tracker, todo, dead)
            texts: dict[int, FrameText | None] = {}
            ahead = _Ahead(tracker.copy())
            async with asyncio.TaskGroup() as group:

                def window_read(window: str) -> None:
                    group.create_task(self._commit_ahead(session, plan, window, todo, texts, ahead))

                await self._read_frames(session, plan.groups, texts, window_read)
            rows = self._rows(session_id, tracker, todo, dead, lambda event, _: texts.get(event.seq))
            # The rows committed ahead are the rows this full pass makes of their events; if a frame
            # vanished meanwhile (a rolled-over moment may then differ) they are replaced.
            final = {row.id: row for row in rows}
            redo = any(final.get(row.id) != row for row in ahead.rows)
            done = set() if redo else {row.id for row in ahead.rows}
            rows = [row for row in rows if row.id not in done]
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
                if redo:
                    first = min(row.seq for row in ahead.rows)
                    await self._index.delete(user_id, Filters(session_id=session_id, first_seq=first))
                if kept:
                    # Tokenizing and copying vectors of a large chunk takes a while: off the event loop.
                    records = await asyncio.to_thread(lambda: [row_record(r, v) for r, v in kept])
                    await self._index.add(user_id, records)
                await self._store.put(user_id, state_key(session_id), tracker.to_json(), "application/json")
            rows = [row for row, _ in kept]
            session.tracker = tracker
            added = len(rows) + (0 if redo else len(ahead.rows))
            self.stats.rows += added
            span.set_attribute("shadowdesk.recall.rows", added)
            if rows:
                self._publish(session.user_id, rows)
            if added:
                self._maybe_optimize(session.user_id, added)

    def _plan(
        self, session_id: str, tracker: MomentTracker, events: list[pb.Event], dead: TombstoneSet
    ) -> _Plan:
        """The dry run: the frames to read, grouped by window, and the batch's moments."""
        probe = tracker.copy()
        windows: dict[str, list[pb.Event]] = {}

        def unread(event: pb.Event, track: str) -> FrameText:
            windows.setdefault(track, []).append(event)
            return _UNREAD

        after: list[tuple[str, int]] = []  # the moment (and its window) open after each event
        for event in events:
            self._rows(session_id, probe, [event], dead, unread)
            after.append((probe.moment_id, probe.window_id))
        newest = str(probe.window_id) if probe.moment_id else ""
        groups = sorted(windows.items(), key=lambda g: (g[0] != newest, -g[1][-1].seq))
        # Each moment's rows depend only on the tracker before its first event here: a moment that
        # opens starts afresh, and the first one continues from the saved tracker.
        segments: list[_Segment] = []
        replay = tracker.copy()
        for i, event in enumerate(events):
            moment, window = after[i]
            if moment and (i == 0 or after[i - 1][0] != moment):
                segments.append(_Segment(str(window), i, i + 1, replay.copy()))
            elif moment:
                segments[-1].stop = i + 1
            self._rows(session_id, replay, [event], dead, lambda _, __: _UNREAD)
        return _Plan(groups, segments)

    async def _read_frames(
        self,
        session: _Session,
        groups: list[tuple[str, list[pb.Event]]],
        texts: dict[int, FrameText | None],
        window_read: Callable[[str], None],
    ) -> None:
        """OCR the groups' frames on every OCR thread, the plan's order first; ``window_read`` hears of
        each window read while others are still to be.

        A window's frames are cut into runs at frames read whole whatever came before them (a page
        scrolled or switched), so even one window's burst is read on every thread; within a run each
        frame is compared with the one before it."""
        async with asyncio.TaskGroup() as group:
            cutting = [group.create_task(self._runs(session, track, frames)) for track, frames in groups]
        runs = deque(run for task in cutting for run in task.result())
        left = {track: sum(run.window == track for run in runs) for track, _ in groups}

        async def reading() -> None:
            while runs:
                run = runs.popleft()
                last = session.reader.last(run.window) if run.first else None
                for event, image in run.frames:
                    texts[event.seq], last = await self._read_frame(session, event, image, last)
                if run.last and last is not None:
                    session.reader.remember(run.window, last)
                left[run.window] -= 1
                if not left[run.window] and any(left.values()):
                    window_read(run.window)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self._ocr_workers, len(runs))):
                group.create_task(reading())

    async def _runs(self, session: _Session, track: str, frames: list[pb.Event]) -> list[_Run]:
        """The window's frames with their images, cut into runs that can be read at once."""
        loaded: list[tuple[pb.Event, bytes | None]] = []
        for event in frames:
            frame = event.frame
            key = frame.stored_key or frame_key(session.session_id, event.seq, frame.mime_type)
            try:
                loaded.append((event, frame.image or await self._log.frame(session.user_id, key)))
            except ObjectNotFoundError:
                loaded.append((event, None))  # erased since it was committed
        starts = [0]
        if len(loaded) > 1 and self._ocr_workers > 1:
            images = [image for _, image in loaded]
            starts = await self._ocr.run(
                session.user_id, Priority.BACKGROUND, _run_starts, session.reader, track, images
            )
        bounds = [*starts, len(loaded)]
        return [
            _Run(track, loaded[lo:hi], first=lo == 0, last=hi == len(loaded))
            for lo, hi in itertools.pairwise(bounds)
        ]

    async def _commit_ahead(
        self,
        session: _Session,
        plan: _Plan,
        window: str,
        events: list[pb.Event],
        texts: dict[int, FrameText | None],
        ahead: _Ahead,
    ) -> None:
        """Commit the rows of the batch's moments in ``window``, whose frames are all read now."""
        user_id, session_id = session.user_id, session.session_id
        dead = await self._tombstones.current(user_id)
        rows = []
        for segment in plan.segments:
            if segment.window == window:
                tracker = segment.start.copy()
                batch = events[segment.first : segment.stop]
                rows += self._rows(session_id, tracker, batch, dead, lambda event, _: texts.get(event.seq))
        if not rows:
            return
        vectors = await self._embedder.encode(
            user_id, [passage_text(r.title, r.text) for r in rows], Priority.BACKGROUND
        )
        async with ahead.writing, self._tombstones.writing(user_id) as dead:
            kept = [
                (row, vector)
                for row, vector in zip(rows, vectors, strict=True)
                if not dead.covers(row.session_id, row.seq, row.time_ms)
            ]
            if not kept:
                return
            if not ahead.marked:  # rows above the saved seq may be in the index from now on
                ahead.start.forget(dead)
                ahead.start.rows_ahead = True
                await self._store.put(
                    user_id, state_key(session_id), ahead.start.to_json(), "application/json"
                )
                ahead.marked = True
            records = await asyncio.to_thread(lambda: [row_record(r, v) for r, v in kept])
            await self._index.add(user_id, records)
            ahead.rows += [row for row, _ in kept]
        self._publish(user_id, [row for row, _ in kept])

    async def _tracker(self, session: _Session) -> MomentTracker:
        """The session's tracker; a saved one with rows ahead of it first has those rows deleted."""
        if session.tracker is not None:
            return session.tracker
        tracker = await self._stored_tracker(session.user_id, session.session_id)
        if tracker.rows_ahead:  # a batch committed some windows ahead, then failed: it is redone whole
            first = tracker.seq + 1
            await self._index.delete(session.user_id, Filters(session_id=session.session_id, first_seq=first))
            tracker.rows_ahead = False
        return tracker

    async def _stored_tracker(self, user_id: str, session_id: str) -> MomentTracker:
        try:
            data = await self._store.get(user_id, state_key(session_id))
        except ObjectNotFoundError:
            return MomentTracker(session_id, int(self._settings.moment_max_span_s * 1000))
        return MomentTracker.from_json(data)

    def _rows(
        self,
        session_id: str,
        tracker: MomentTracker,
        events: Sequence[pb.Event],
        dead: TombstoneSet,
        read: FrameSource,
    ) -> list[IndexRow]:
        """Advance ``tracker`` over ``events`` (frames' text from ``read``); the rows they bring."""
        rows = []
        for event in events:
            if event.seq <= tracker.seq:
                continue
            if dead.covers_event(session_id, event):
                tracker.skip(event.seq)  # erased while it waited: not even its frame is read
                continue
            row = self._row(session_id, tracker, event, read)
            if row is not None:
                rows.append(row)
        return rows

    @staticmethod
    def _row(session_id: str, tracker: MomentTracker, event: pb.Event, read: FrameSource) -> IndexRow | None:
        time_ms = event.time_unix_nano // _NS_PER_MS
        kind = event.WhichOneof("kind")
        if kind == "window_focus":
            focus = event.window_focus
            return tracker.focus(
                event.seq, time_ms, focus.window_id, focus.app_id, focus.title, focus.private
            )
        if kind == "frame":
            frame = event.frame
            text = None
            if tracker.moment_id and frame.window_id == tracker.window_id:
                text = read(event, str(frame.window_id))
            if text is None:  # not the focused window's, or erased since it was committed
                tracker.skip(event.seq)
                return None
            key = frame.stored_key or frame_key(session_id, event.seq, frame.mime_type)
            lines = [box.text for box in text.boxes]
            return tracker.content(
                event.seq, time_ms, "screen", lines, frame=(key, frame.width, frame.height, text.boxes)
            )
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

    async def _read_frame(
        self, session: _Session, event: pb.Event, image: bytes | None, last: LastFrame | None
    ) -> tuple[FrameText | None, LastFrame | None]:
        if image is None:
            return None, last
        started = time.perf_counter()
        text, last = await self._ocr.run(
            session.user_id, Priority.BACKGROUND, self._read_on_engine, session.reader, last, image
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
        return text, last

    def _read_on_engine(
        self, reader: FrameReader, last: LastFrame | None, image: bytes
    ) -> tuple[FrameText, LastFrame | None]:
        engine = self._engines.get_nowait()  # the pool runs no more calls than there are engines
        try:
            return reader.read_after(last, image, engine)
        finally:
            self._engines.put(engine)

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


def _run_starts(reader: FrameReader, track: str, images: list[bytes | None]) -> list[int]:
    """Where the frames can be cut into runs: at each frame read whole whatever came before it."""
    last = reader.last(track)
    before = last.grey if last is not None else None
    starts = [0]
    for i, image in enumerate(images):
        grey = reader.grey(image) if image is not None else None
        if grey is None:
            continue  # read as nothing: the next frame follows the one before
        change = FrameReader.change(before, grey)
        if i and change > FrameReader.WHOLE:
            starts.append(i)
        if change:  # as reading does: an unchanged frame leaves the one before it to compare with
            before = grey
    return starts
