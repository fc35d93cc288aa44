"""Consistency of a user's space: every committed batch indexed, nothing erased left anywhere.

``Consistency.check`` is the full scan behind ``shadowdesk fsck``: it reads every segment, lists every
frame, pages through the index and every saved moment state, and counts what a tombstone covers but
still exists (events, frames, rows, moment states), frames no stored event refers to, and sessions
whose log is ahead of their index (the seq of their saved moment state, Recall's cursor in the
committed stream). ``repair`` redoes every erasure that left something behind and (with ``orphans``)
deletes unreferenced frames, which only a quiescent server should do: a frame is written a moment
before the segment that refers to it. Sessions left unindexed are caught up by a running server's
committed stream (``cloud_infer.stream``), which sweeps every user's sessions at start and then
periodically, for every consumer alike.

``ReconcileJob`` is the cheap, periodic part a server runs: it finishes erasures a crash interrupted
(tombstones still marked unapplied) for every user in the directory, so none waits for the user's
agent to come back.
"""

from __future__ import annotations

import asyncio
import logging

from pydantic import BaseModel, Field

from cloud_infer.recall.moments import MomentTracker
from cloud_infer.recall.pipeline import state_key
from cloud_infer.recall.service import RecallService
from recall_store.directory import UserDirectory
from recall_store.errors import ObjectNotFoundError
from recall_store.event_log import EventLog
from recall_store.tombstones import TombstoneSet

logger = logging.getLogger(__name__)

_ALL_TIME_NS = 2**63


class SessionLag(BaseModel):
    session_id: str
    stored_seq: int
    indexed_seq: int


class ConsistencyReport(BaseModel):
    """What one check of a user's space found; ``ok`` when nothing needs repair."""

    user_id: str
    sessions: int = 0
    events: int = 0
    frames: int = 0
    rows: int = 0
    pending_erasures: int = 0
    erased_events: int = Field(0, description="events a tombstone covers that still hold content")
    erased_frames: int = Field(0, description="frame objects of events a tombstone covers")
    erased_rows: int = Field(0, description="index rows a tombstone covers")
    erased_states: int = Field(0, description="saved moment states still open on a covered moment")
    orphan_frames: list[str] = Field(default_factory=list, description="frames no stored event refers to")
    unindexed: list[SessionLag] = Field(default_factory=list)

    @property
    def erased_leftovers(self) -> int:
        return self.erased_events + self.erased_frames + self.erased_rows + self.erased_states

    @property
    def ok(self) -> bool:
        return not (self.pending_erasures or self.erased_leftovers or self.orphan_frames or self.unindexed)


class Consistency:
    def __init__(self, service: RecallService) -> None:
        self._service = service
        self._log = EventLog(service.store)

    async def check(self, user_id: str) -> ConsistencyReport:
        """Scan the whole space of ``user_id`` (a full read: for fsck and tests, not a hot path)."""
        store, dead = self._service.store, await self._service.tombstones.current(user_id)
        report = ConsistencyReport(user_id=user_id, pending_erasures=len(dead.pending()))
        referenced: set[str] = set()
        erased_keys: set[str] = set()
        sessions: set[str] = set()
        async for segment in self._log.iter_segments(user_id, 0, _ALL_TIME_NS):
            sessions.add(segment.session_id)
            report.events += len(segment.events)
            for event in segment.events:
                key = event.frame.stored_key if event.WhichOneof("kind") == "frame" else ""
                if event.WhichOneof("kind") is not None and dead.covers_event(segment.session_id, event):
                    report.erased_events += 1
                    erased_keys.add(key)
                elif key:
                    referenced.add(key)
        erased_keys.discard("")
        frames = await store.list_keys(user_id, "frames/")
        report.frames = len(frames)
        report.erased_frames = sum(1 for key in frames if key in erased_keys or _seq_covered(dead, key))
        report.orphan_frames = [key for key in frames if key not in referenced and key not in erased_keys]
        async for page in self._service.index.iter_rows(user_id):
            report.rows += len(page)
            report.erased_rows += sum(
                1 for r in page if dead.covers(r["session_id"], int(r["seq"]), int(r["time_ms"]))
            )
        report.sessions = len(sessions)
        for key in await store.list_keys(user_id, "recall/state/"):
            tracker = MomentTracker.from_json(await store.get(user_id, key))
            if tracker.moment_id and dead.covers(tracker.session_id, tracker.moment_seq, tracker.start_ms):
                report.erased_states += 1
        report.unindexed = await self._lagging(user_id, sorted(sessions))
        return report

    async def repair(self, user_id: str, orphans: bool = False) -> ConsistencyReport:
        """Redo erasures that left anything behind (and delete orphan frames); then check again."""
        report = await self.check(user_id)
        if report.pending_erasures or report.erased_leftovers:
            dead = await self._service.tombstones.current(user_id)
            for tombstone in dead.tombstones:
                async with self._service.tombstones.reapplying(user_id, tombstone.id):
                    await self._service.apply(user_id, tombstone, always_purge=True)
        if orphans and report.orphan_frames:
            await self._service.store.delete(user_id, report.orphan_frames)
        return await self.check(user_id)

    async def reconcile(self, user_id: str) -> int:
        """The cheap part: finish interrupted erasures. Returns how many."""
        tombstones = self._service.tombstones
        pending = (await tombstones.current(user_id)).pending()
        for tombstone in pending:
            async with tombstones.reapplying(user_id, tombstone.id):
                await self._service.apply(user_id, tombstone, always_purge=True)
            logger.info("finished an interrupted erasure")
        return len(pending)

    async def _lagging(self, user_id: str, sessions: list[str]) -> list[SessionLag]:
        lagging = []
        for session_id in sessions:
            stored = await self._log.last_seq(user_id, session_id)
            indexed = await self._indexed_seq(user_id, session_id)
            if indexed < stored:
                lagging.append(SessionLag(session_id=session_id, stored_seq=stored, indexed_seq=indexed))
        return lagging

    async def _indexed_seq(self, user_id: str, session_id: str) -> int:
        try:
            return MomentTracker.from_json(await self._service.store.get(user_id, state_key(session_id))).seq
        except ObjectNotFoundError:
            return 0


def _seq_covered(dead: TombstoneSet, frame_key: str) -> bool:
    """A frame whose seq falls in a seq-range tombstone of its session (its event may be gone already)."""
    _, session_id, name = frame_key.split("/")
    seq = int(name.split(".")[0])
    return any(t.session_id == session_id and t.covers(session_id, seq, -1) for t in dead.tombstones)


class ReconcileJob:
    def __init__(self, consistency: Consistency, directory: UserDirectory, interval_s: float) -> None:
        self._consistency = consistency
        self._directory = directory
        self._interval_s = interval_s

    async def run(self) -> None:
        while True:
            await self.sweep()
            await asyncio.sleep(self._interval_s)

    async def sweep(self) -> int:
        """Reconcile every user once; returns the fixes made. A failed user is retried next time."""
        try:
            users = await self._directory.users()
        except Exception:
            logger.exception("the user directory cannot be read; reconcile retries next interval")
            return 0
        fixes = 0
        for user_id in users:
            try:
                fixes += await self._consistency.reconcile(user_id)
            except Exception:
                logger.exception("reconciling a user failed; retrying next interval")
        return fixes
