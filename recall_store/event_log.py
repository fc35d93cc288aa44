"""Append-only per-session event log on top of an ObjectStore.

Layout inside a user's space (keys follow ``recall_store.naming``, which forbids ``_``, so the seq
range and the time range of a segment are separated by ``.``):

* ``frames/<session_id>/<seq:012d>.<webp|jpg|png>``: one screen frame image, written first;
* ``events/<session_id>/<first_seq:012d>-<last_seq:012d>.<tmin_ms>-<tmax_ms>.pb``: one serialized
  ``EventBatch`` whose frames carry ``stored_key`` instead of image bytes.

The segment is the commit point: a batch is stored once its segment exists. Frames written before a
failed segment write are orphans that a retry of the same seqs overwrites. Zero-padded seqs make the
listing order the seq order, and the time range in the name lets reads skip segments unopened.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass

from opentelemetry import trace

from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.errors import InvalidNameError, ObjectNotFoundError
from recall_store.naming import validate_key
from recall_store.store import ObjectStore

FRAME_EXTENSIONS = {"image/webp": "webp", "image/jpeg": "jpg", "image/png": "png"}
FRAME_CONTENT_TYPES = {ext: mime for mime, ext in FRAME_EXTENSIONS.items()}
SEGMENT_CONTENT_TYPE = "application/x-protobuf"
_SEGMENT_NAME_RE = re.compile(r"^(\d{12})-(\d{12})\.(\d+)-(\d+)\.pb$")
FRAME_NAME_RE = re.compile(r"^\d{12}\.(webp|jpg|png)$")
_NS_PER_MS = 1_000_000
# Segments fetched at once by a read; the store's own pool bounds real parallelism further.
_READ_CONCURRENCY = 8

tracer = trace.get_tracer(__name__)


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event read back from the log, with the session it belongs to."""

    session_id: str
    event: pb.Event


@dataclass(frozen=True, slots=True)
class LoggedSegment:
    """The events of one stored segment that a streaming read kept, in seq order."""

    session_id: str
    events: list[pb.Event]


@dataclass(frozen=True, slots=True)
class Segment:
    """A stored segment, known from its name alone."""

    key: str
    session_id: str
    first_seq: int
    last_seq: int
    tmin_ms: int
    tmax_ms: int


def frame_key(session_id: str, seq: int, mime_type: str) -> str:
    """Key of the image of frame ``seq``; raise InvalidNameError for an unsupported mime type."""
    ext = FRAME_EXTENSIONS.get(mime_type)
    if ext is None:
        raise InvalidNameError(f"unsupported frame mime type {mime_type!r}")
    return validate_key(f"frames/{session_id}/{seq:012d}.{ext}")


def segment_key(session_id: str, events: Sequence[pb.Event]) -> str:
    times_ms = [e.time_unix_nano // _NS_PER_MS for e in events]
    name = f"{events[0].seq:012d}-{events[-1].seq:012d}.{min(times_ms)}-{max(times_ms)}.pb"
    return validate_key(f"events/{session_id}/{name}")


def _parse_segment(key: str) -> Segment | None:
    parts = key.split("/")
    match = _SEGMENT_NAME_RE.fullmatch(parts[-1]) if len(parts) == 3 else None
    if match is None:
        return None
    first, last, tmin, tmax = (int(g) for g in match.groups())
    return Segment(key, parts[1], first, last, tmin, tmax)


async def read_ahead(
    store: ObjectStore, user_id: str, keys: Iterable[str], depth: int = _READ_CONCURRENCY
) -> AsyncGenerator[tuple[str, bytes], None]:
    """``(key, bytes)`` of each key in the given order, at most ``depth`` objects fetched ahead.

    Memory stays at ``depth`` objects however many keys there are, while the store still works on
    the next ones as the caller processes one. Close it (``contextlib.aclosing``) when leaving early,
    so the fetches in flight are cancelled.
    """
    remaining = iter(keys)
    pending: deque[tuple[str, asyncio.Task[bytes]]] = deque()
    try:
        while True:
            while len(pending) < depth and (key := next(remaining, None)) is not None:
                pending.append((key, asyncio.create_task(store.get(user_id, key))))
            if not pending:
                return
            key, fetch = pending.popleft()
            yield key, await fetch
    finally:
        for _, fetch in pending:
            fetch.cancel()
        await asyncio.gather(*(fetch for _, fetch in pending), return_exceptions=True)


class EventLog:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    @property
    def store(self) -> ObjectStore:
        return self._store

    async def append(self, user_id: str, session_id: str, events: Sequence[pb.Event]) -> None:
        """Durably store ``events`` (seq strictly increasing): frame images first, then the segment."""
        if not events:
            return
        with tracer.start_as_current_span("store.write") as span:
            batch = pb.EventBatch()
            batch.events.extend(events)
            frame_writes = []
            for stored in batch.events:
                if stored.HasField("frame") and stored.frame.image:
                    key = frame_key(session_id, stored.seq, stored.frame.mime_type)
                    frame_writes.append(
                        self._store.put(user_id, key, stored.frame.image, stored.frame.mime_type)
                    )
                    stored.frame.ClearField("image")
                    stored.frame.stored_key = key
            data = batch.SerializeToString()
            span.set_attribute("shadowdesk.session_id", session_id)
            span.set_attribute("shadowdesk.events", len(events))
            span.set_attribute("shadowdesk.frames", len(frame_writes))
            span.set_attribute("shadowdesk.segment_bytes", len(data))
            await asyncio.gather(*frame_writes)
            await self._store.put(user_id, segment_key(session_id, batch.events), data, SEGMENT_CONTENT_TYPE)

    async def last_seq(self, user_id: str, session_id: str) -> int:
        """Highest seq durably stored for the session; 0 if none."""
        keys = await self._store.list_keys(user_id, prefix=validate_key(f"events/{session_id}") + "/")
        segments = [s for s in map(_parse_segment, keys) if s is not None]
        return max((s.last_seq for s in segments), default=0)

    async def session_heads(self, user_id: str) -> dict[str, int]:
        """Highest seq stored of every session of the user (from one listing of segment names)."""
        heads: dict[str, int] = {}
        for segment in map(_parse_segment, await self._store.list_keys(user_id, prefix="events/")):
            if segment is not None and segment.last_seq > heads.get(segment.session_id, 0):
                heads[segment.session_id] = segment.last_seq
        return heads

    async def segments(self, user_id: str, session_id: str, after_seq: int = 0) -> list[Segment]:
        """The session's segments holding a seq after ``after_seq``, in seq order (names only)."""
        keys = await self._store.list_keys(user_id, prefix=validate_key(f"events/{session_id}") + "/")
        return [s for s in map(_parse_segment, keys) if s is not None and s.last_seq > after_seq]

    async def read_segments(
        self,
        user_id: str,
        segments: Sequence[Segment],
        after_seq: int,
        through_seq: int,
        limit: asyncio.Semaphore | None = None,
    ) -> list[pb.Event]:
        """Events of ``segments`` (one session's) with ``after_seq < seq <= through_seq``, in seq order.

        Each fetch takes a slot of ``limit`` (a caller's budget shared by many reads; default:
        ``_READ_CONCURRENCY`` for this call); a segment erased since it was listed holds nothing.
        """
        limit = limit or asyncio.Semaphore(_READ_CONCURRENCY)

        async def fetch(segment: Segment) -> bytes:
            async with limit:
                try:
                    return await self._store.get(user_id, segment.key)
                except ObjectNotFoundError:
                    return b""

        by_seq: dict[int, pb.Event] = {}
        for data in await asyncio.gather(*(fetch(s) for s in segments)):
            for event in pb.EventBatch.FromString(data).events:
                if after_seq < event.seq <= through_seq:
                    by_seq.setdefault(event.seq, event)
        return [by_seq[seq] for seq in sorted(by_seq)]

    async def read(self, user_id: str, start_ns: int, end_ns: int) -> list[LoggedEvent]:
        """Events of all the user's sessions with ``start_ns <= time < end_ns``, ordered by time."""
        keys = await self._store.list_keys(user_id, prefix="events/")
        wanted = [
            s
            for s in map(_parse_segment, keys)
            if s is not None and s.tmin_ms * _NS_PER_MS < end_ns and (s.tmax_ms + 1) * _NS_PER_MS > start_ns
        ]
        limit = asyncio.Semaphore(_READ_CONCURRENCY)

        async def fetch(segment: Segment) -> tuple[Segment, bytes]:
            async with limit:
                return segment, await self._store.get(user_id, segment.key)

        seen: set[tuple[str, int]] = set()
        result: list[LoggedEvent] = []
        for segment, data in await asyncio.gather(*(fetch(s) for s in wanted)):
            for event in pb.EventBatch.FromString(data).events:
                # A segment rewritten with a different batching after a lost ack may overlap another.
                if start_ns <= event.time_unix_nano < end_ns and (segment.session_id, event.seq) not in seen:
                    seen.add((segment.session_id, event.seq))
                    result.append(LoggedEvent(segment.session_id, event))
        result.sort(key=lambda e: (e.event.time_unix_nano, e.session_id, e.event.seq))
        return result

    async def iter_segments(
        self, user_id: str, start_ns: int, end_ns: int
    ) -> AsyncGenerator[LoggedSegment, None]:
        """The events with ``start_ns <= time < end_ns``, one segment at a time, unlike ``read``.

        Sessions come in id order, each one's segments in seq order (segments with no event in the
        window are skipped). Memory holds the segment names, ``_READ_CONCURRENCY`` segments read
        ahead and one decoded segment, however many events the window has. Each event comes once:
        a seq already seen in an earlier segment of the session (a rewritten batch) is skipped, and
        only seqs that a later segment could repeat are remembered.
        """
        keys = await self._store.list_keys(user_id, prefix="events/")
        wanted = {
            s.key: s
            for s in map(_parse_segment, keys)
            if s is not None and s.tmin_ms * _NS_PER_MS < end_ns and (s.tmax_ms + 1) * _NS_PER_MS > start_ns
        }
        session_id = ""
        seen: set[int] = set()
        async with contextlib.aclosing(read_ahead(self._store, user_id, wanted)) as segments:
            async for key, data in segments:
                segment = wanted[key]
                if segment.session_id != session_id:
                    session_id, seen = segment.session_id, set()
                # Later segments start at or after this one's first seq: smaller seqs cannot recur.
                seen = {seq for seq in seen if seq >= segment.first_seq}
                events = []
                for event in pb.EventBatch.FromString(data).events:
                    if start_ns <= event.time_unix_nano < end_ns and event.seq not in seen:
                        seen.add(event.seq)
                        events.append(event)
                if events:
                    yield LoggedSegment(session_id, events)

    async def read_session(
        self, user_id: str, session_id: str, after_seq: int, before_seq: int
    ) -> list[pb.Event]:
        """Events of one session with ``after_seq < seq < before_seq``, in seq order."""
        keys = await self._store.list_keys(user_id, prefix=validate_key(f"events/{session_id}") + "/")
        wanted = [
            s
            for s in map(_parse_segment, keys)
            if s is not None and s.last_seq > after_seq and s.first_seq < before_seq
        ]
        by_seq: dict[int, pb.Event] = {}
        for segment in wanted:
            for event in pb.EventBatch.FromString(await self._store.get(user_id, segment.key)).events:
                if after_seq < event.seq < before_seq:
                    by_seq.setdefault(event.seq, event)
        return [by_seq[seq] for seq in sorted(by_seq)]

    async def oldest_time_ns(self, user_id: str) -> int | None:
        """Start of the oldest non-empty segment's time range (from names only), or None."""
        segments = [
            s for s in map(_parse_segment, await self._store.list_keys(user_id, prefix="events/")) if s
        ]
        return min((s.tmin_ms * _NS_PER_MS for s in segments), default=None)

    async def erase_time_range(self, user_id: str, start_ns: int, end_ns: int) -> int:
        """Delete every event (and its frame) with ``start_ns <= time < end_ns``; return objects deleted."""
        segments = [
            s for s in map(_parse_segment, await self._store.list_keys(user_id, prefix="events/")) if s
        ]
        return await self._erase(
            user_id,
            segments,
            lambda s: s.tmin_ms * _NS_PER_MS < end_ns and (s.tmax_ms + 1) * _NS_PER_MS > start_ns,
            lambda e: start_ns <= e.time_unix_nano < end_ns,
        )

    async def erase_seq_range(
        self, user_id: str, session_id: str, first_seq: int, stop_seq: int | None
    ) -> int:
        """Delete the session's events with ``first_seq <= seq < stop_seq`` (no stop: to the end)."""
        stop = stop_seq if stop_seq is not None else 2**63
        keys = await self._store.list_keys(user_id, prefix=validate_key(f"events/{session_id}") + "/")
        segments = [s for s in map(_parse_segment, keys) if s]
        return await self._erase(
            user_id,
            segments,
            lambda s: s.last_seq >= first_seq and s.first_seq < stop,
            lambda e: first_seq <= e.seq < stop,
        )

    async def _erase(
        self,
        user_id: str,
        segments: list[Segment],
        overlaps: Callable[[Segment], bool],
        doomed: Callable[[pb.Event], bool],
    ) -> int:
        """Rewrite overlapping segments without the doomed events and delete their frames.

        A session's newest segment is kept even when emptied, because its name carries the session's
        high-water mark: without it a resent batch of erased events would be stored again.
        """
        newest: dict[str, tuple[int, str]] = {}
        for segment in segments:
            if segment.last_seq > newest.get(segment.session_id, (0, ""))[0]:
                newest[segment.session_id] = (segment.last_seq, segment.key)
        deleted = 0
        for segment in filter(overlaps, segments):
            batch = pb.EventBatch.FromString(await self._store.get(user_id, segment.key))
            kept = [e for e in batch.events if not doomed(e)]
            if len(kept) == len(batch.events):
                continue
            frames = [e.frame.stored_key for e in batch.events if doomed(e) and e.frame.stored_key]
            await self._store.delete(user_id, frames)
            deleted += len(frames)
            if kept or newest[segment.session_id][1] == segment.key:
                rewritten = pb.EventBatch()
                rewritten.events.extend(kept)
                await self._store.put(
                    user_id, segment.key, rewritten.SerializeToString(), SEGMENT_CONTENT_TYPE
                )
            else:
                await self._store.delete(user_id, [segment.key])
                deleted += 1
        return deleted

    async def frame(self, user_id: str, key: str) -> bytes:
        """The image bytes of a frame key returned in ``ScreenFrame.stored_key``."""
        parts = validate_key(key).split("/")
        if len(parts) != 3 or parts[0] != "frames" or not FRAME_NAME_RE.fullmatch(parts[2]):
            raise InvalidNameError(f"not a frame key: {key!r}")
        return await self._store.get(user_id, key)
