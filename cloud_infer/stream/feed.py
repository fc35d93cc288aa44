"""One consumer's view of one session: its cursor, the batches it holds in memory, how far behind it is.

A feed takes committed batches in memory while it is ``accepting``. When its queue is full it stops
(``accepting`` false) and the batches it did not take are read back from the event log later; it
accepts again once a log read has reached everything committed. Every batch carries the seq the
session had stored before it (``after_seq``), so a feed knows exactly when its memory is contiguous
with its cursor and when a gap must come from the log. Nothing here awaits: the fan-out's worker
(``cloud_infer.stream.fanout``) does the reading and calling.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.event_log import Segment

# Commit times remembered per feed for the seconds-behind figure; past it, the newest marks merge.
_MAX_MARKS = 64


@dataclass(frozen=True, slots=True)
class Batch:
    """A committed batch as ingest stored it; ``after_seq``: the session's stored seq before it."""

    after_seq: int
    events: Sequence[pb.Event]
    size: int  # bytes, as ingest measured the batch

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq


@dataclass
class Held:
    """What one consumer holds in memory over all its sessions."""

    events: int = 0
    bytes: int = 0


@dataclass(eq=False)
class Feed:
    user_id: str
    session_id: str
    held: Held  # the consumer's, shared by its feeds
    cursor: int | None = None  # last seq handled; None until loaded from the consumer's cursors
    saved: int = 0  # the cursor as last saved
    saved_at: float = 0.0
    hwm: int = 0  # highest seq known to be committed
    accepting: bool = True
    queue: deque[Batch] = field(default_factory=deque)
    marks: deque[tuple[int, float]] = field(default_factory=deque)  # (last seq, committed at)
    segments: list[Segment] = field(default_factory=list)  # listing of the log while catching up
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    failures: int = 0  # consecutive failed calls

    def committed(self, last_seq: int, now: float) -> bool:
        """Note that the session has stored up to ``last_seq``; True when that is news."""
        if last_seq <= self.hwm:
            return False
        self.hwm = last_seq
        if len(self.marks) < _MAX_MARKS:
            self.marks.append((last_seq, now))
        else:
            self.marks[-1] = (last_seq, self.marks[-1][1])
        return True

    def offer(self, batch: Batch, room: bool) -> bool:
        """Hold ``batch`` in memory if the feed accepts and ``room`` says there is space; else stop."""
        if self.accepting and room:
            self.queue.append(batch)
            self.held.events += len(batch.events)
            self.held.bytes += batch.size
            return True
        self.accepting = False
        return False

    def drop_handled(self) -> None:
        """Forget queued batches the cursor already covers."""
        cursor = self.cursor or 0
        while self.queue and self.queue[0].last_seq <= cursor:
            self._release(self.queue.popleft())

    def take_contiguous(self, max_events: int) -> tuple[list[pb.Event], int] | None:
        """Queued batches that continue the cursor without a gap: (events, through seq).

        None when the queue is empty or its first batch starts after a gap.
        """
        cursor = self.cursor or 0
        if not self.queue or self.queue[0].after_seq > cursor:
            return None
        events: list[pb.Event] = []
        through = cursor
        while self.queue and self.queue[0].after_seq <= through:
            if events and len(events) + len(self.queue[0].events) > max_events:
                break
            batch = self.queue.popleft()
            self._release(batch)
            events.extend(e for e in batch.events if e.seq > through)
            through = batch.last_seq
        return events, through

    def _release(self, batch: Batch) -> None:
        self.held.events -= len(batch.events)
        self.held.bytes -= batch.size

    def gap_end(self) -> int:
        """The seq up to which the log must be read before memory continues (the hwm if none queued)."""
        return self.queue[0].after_seq if self.queue else self.hwm

    def advance(self, through: int, now: float) -> list[float]:
        """The cursor moved to ``through``; returns the delays (commit to now) of the batches done."""
        self.cursor = max(self.cursor or 0, through)
        delays = []
        while self.marks and self.marks[0][0] <= self.cursor:
            delays.append(now - self.marks.popleft()[1])
        self.failures = 0
        return delays

    @property
    def caught_up(self) -> bool:
        return self.cursor is not None and self.cursor >= self.hwm and not self.queue

    def behind_events(self) -> int:
        """Seqs committed but not yet handled (gaps in seqs count too)."""
        return max(0, self.hwm - (self.cursor or 0))

    def behind_seconds(self, now: float) -> float:
        """Age of the oldest committed batch not yet handled; 0 when caught up."""
        return now - self.marks[0][1] if self.marks else 0.0
