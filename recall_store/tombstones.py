"""Tombstones: what a user erased stays erased, whatever arrives or finishes later.

Each user's space holds ``erasure/tombstones.json``: the time ranges (ms, ``[start, end)``, every
session) and seq ranges (one session, ``[first, stop)``) the user erased. Every writer of history holds
the user's gate shared while it drops what a tombstone covers and writes the rest (ingest's append,
the recall pipeline's index add); an erasure holds the gate exclusive while it records its tombstone
durably, then deletes. So a write in flight lands either before the erasure, which then deletes it, or
after the tombstone exists, and is dropped: a resent batch, a replayed spool or an indexer that was
mid-batch can never bring erased text, frames or rows back.

A tombstone is written ``applied=false`` before any deletion and marked applied after the last one,
so the reconcile job can finish erasures a crash interrupted. Applied time ranges are merged, so
retention's hourly ``[0, cutoff)`` keeps the record at one entry. The gate is per process; several
server processes share tombstones through the store and re-read them every ``refresh_s``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiorwlock import RWLock
from pydantic import BaseModel, Field

from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.errors import ObjectNotFoundError
from recall_store.naming import validate_key
from recall_store.store import ObjectStore

TOMBSTONES_KEY = validate_key("erasure/tombstones.json")
ERASURE_PREFIX = "erasure/"
_NS_PER_MS = 1_000_000


class Tombstone(BaseModel):
    """One erasure: a time range of every session, or a seq range of one session."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created_ms: int = Field(default_factory=lambda: int(time.time() * 1000))
    applied: bool = False
    start_ms: int | None = None
    end_ms: int | None = None
    session_id: str | None = None
    first_seq: int | None = None
    stop_seq: int | None = None

    @classmethod
    def time_range(cls, start_ms: int, end_ms: int) -> Tombstone:
        return cls(start_ms=start_ms, end_ms=end_ms)

    @classmethod
    def seq_range(cls, session_id: str, first_seq: int, stop_seq: int) -> Tombstone:
        return cls(session_id=session_id, first_seq=first_seq, stop_seq=stop_seq)

    def covers(self, session_id: str, seq: int, time_ms: int) -> bool:
        if self.start_ms is not None and self.end_ms is not None:
            return self.start_ms <= time_ms < self.end_ms
        return (
            session_id == self.session_id
            and self.first_seq is not None
            and self.stop_seq is not None
            and self.first_seq <= seq < self.stop_seq
        )


class _Record(BaseModel):
    version: int = 0
    tombstones: list[Tombstone] = Field(default_factory=list)


@dataclass(frozen=True)
class TombstoneSet:
    """A user's tombstones at one version; ``version`` grows with every recorded change."""

    version: int = 0
    tombstones: tuple[Tombstone, ...] = ()

    def covers(self, session_id: str, seq: int, time_ms: int) -> bool:
        return any(t.covers(session_id, seq, time_ms) for t in self.tombstones)

    def covers_event(self, session_id: str, event: pb.Event) -> bool:
        return self.covers(session_id, event.seq, event.time_unix_nano // _NS_PER_MS)

    def pending(self) -> list[Tombstone]:
        """Tombstones whose deletions may not all have happened (a crash interrupted them)."""
        return [t for t in self.tombstones if not t.applied]

    def newer_than(self, version: int) -> bool:
        return self.version > version


def redact_erased(session_id: str, events: Sequence[pb.Event], dead: TombstoneSet) -> list[pb.Event]:
    """``events`` with every covered one reduced to its seq and time (kept, so acks stay in order)."""
    if not dead.tombstones:
        return list(events)
    return [
        pb.Event(seq=e.seq, time_unix_nano=e.time_unix_nano) if dead.covers_event(session_id, e) else e
        for e in events
    ]


@dataclass
class _Gate:
    lock: RWLock = field(default_factory=RWLock)
    holders: int = 0


@dataclass
class _Cached:
    tombstones: TombstoneSet
    loaded_at: float


class Tombstones:
    def __init__(self, store: ObjectStore, refresh_s: float = 30.0) -> None:
        self._store = store
        self._refresh_s = refresh_s
        self._cache: dict[str, _Cached] = {}
        self._gates: dict[str, _Gate] = {}

    async def current(self, user_id: str) -> TombstoneSet:
        """The user's tombstones (cached; re-read after ``refresh_s``). Raises StoreError."""
        cached = self._cache.get(user_id)
        if cached is not None and time.monotonic() - cached.loaded_at < self._refresh_s:
            return cached.tombstones
        record = await self._load(user_id)
        tombstones = TombstoneSet(record.version, tuple(record.tombstones))
        self._cache[user_id] = _Cached(tombstones, time.monotonic())
        return tombstones

    @asynccontextmanager
    async def writing(self, user_id: str) -> AsyncIterator[TombstoneSet]:
        """Hold the user's gate shared; write only what the yielded tombstones do not cover."""
        async with self._hold(user_id, exclusive=False):
            yield await self.current(user_id)

    @asynccontextmanager
    async def erasing(self, user_id: str) -> AsyncIterator[Callable[[Tombstone], Awaitable[None]]]:
        """Hold the user's gate exclusive; the caller records its tombstone, then deletes.

        The yielded ``record`` stores a tombstone durably before any deletion. When the block ends
        without error, recorded tombstones are marked applied; if it fails, they stay recorded and
        unapplied, so new writes are already refused and the reconcile job finishes the deletions.
        """
        recorded: list[str] = []

        async def record(tombstone: Tombstone) -> None:
            await self._update(user_id, lambda r: r.tombstones.append(tombstone.model_copy()))
            recorded.append(tombstone.id)

        async with self._hold(user_id, exclusive=True):
            yield record
            for tombstone_id in recorded:
                await self._mark_applied(user_id, tombstone_id)

    @asynccontextmanager
    async def reapplying(self, user_id: str, tombstone_id: str) -> AsyncIterator[None]:
        """Exclusive hold to redo an unapplied tombstone's deletions; marks it applied after."""
        async with self._hold(user_id, exclusive=True):
            yield
            await self._mark_applied(user_id, tombstone_id)

    async def _mark_applied(self, user_id: str, tombstone_id: str) -> None:
        def mark(record: _Record) -> None:
            for tombstone in record.tombstones:
                if tombstone.id == tombstone_id:
                    tombstone.applied = True
            record.tombstones = _merged(record.tombstones)

        await self._update(user_id, mark)

    async def _update(self, user_id: str, change: Callable[[_Record], None]) -> None:
        record = await self._load(user_id)
        change(record)
        record.version += 1
        await self._store.put(user_id, TOMBSTONES_KEY, record.model_dump_json().encode(), "application/json")
        current = TombstoneSet(record.version, tuple(record.tombstones))
        self._cache[user_id] = _Cached(current, time.monotonic())

    async def _load(self, user_id: str) -> _Record:
        try:
            return _Record.model_validate_json(await self._store.get(user_id, TOMBSTONES_KEY))
        except ObjectNotFoundError:
            return _Record()

    @asynccontextmanager
    async def _hold(self, user_id: str, exclusive: bool) -> AsyncIterator[None]:
        gate = self._gates.setdefault(user_id, _Gate())
        gate.holders += 1  # before waiting: the entry lives while anyone holds or waits for it
        try:
            async with gate.lock.writer_lock if exclusive else gate.lock.reader_lock:
                yield
        finally:
            gate.holders -= 1
            if gate.holders == 0:
                del self._gates[user_id]


def _merged(tombstones: list[Tombstone]) -> list[Tombstone]:
    """Applied time ranges that overlap or touch become one; everything else is kept as is."""
    ranges = sorted(
        (t for t in tombstones if t.applied and t.start_ms is not None and t.end_ms is not None),
        key=lambda t: t.start_ms or 0,
    )
    merged: list[Tombstone] = []
    for tombstone in ranges:
        last = merged[-1] if merged else None
        touching = last is not None and last.end_ms is not None and tombstone.start_ms is not None
        if touching and last is not None and (tombstone.start_ms or 0) <= (last.end_ms or 0):
            merged[-1] = last.model_copy(update={"end_ms": max(last.end_ms or 0, tombstone.end_ms or 0)})
            continue
        merged.append(tombstone)
    return merged + [t for t in tombstones if not (t.applied and t.start_ms is not None)]
