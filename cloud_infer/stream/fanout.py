"""The committed stream's fan-out: every feature reads what ingest stored, at its own pace.

Ingest calls ``publish`` right after a batch is durably stored and acknowledges at once: publishing
never awaits a consumer. Each registered consumer (``register(name, handler)``) gets, per session:

* a durable cursor, the last seq it has handled (``cloud_infer.stream.cursors``: its own, or one the
  fan-out keeps in the user's space), saved at least every ``cursor_save_interval_s``;
* a bounded in-memory queue of the batches just committed, so a consumer that keeps up is handed
  each batch as soon as it is stored, with no store read;
* one worker task that calls the handler with the session's events in seq order, each seq once per
  run, taking turns with the consumer's other sessions (``concurrency`` calls at once). When the
  queue is full (``queue_batches`` per session, ``queue_bytes`` per consumer) the feed stops taking
  batches in memory and the worker reads what it missed from the event log, in chunks of
  ``chunk_events``, until it has reached everything committed; then memory takes over again.

Consumers are isolated: each has its own queues, cursors, tasks and turns, so a stalled or failing
consumer delays only itself. What they share is bounded so that ingest keeps its part: the fan-out's
own store calls (log reads, cursor loads and saves) take one of ``store_concurrency`` slots, since
the store's worker pool also serves ingest's writes. A handler that raises is called again with the
same events after a jittered backoff, forever (the lag metrics show it).

Delivery is at least once: a handler is never given a seq at or below its saved cursor, but after a
crash (or a cancelled call at shutdown past ``close_grace_s``) whatever it handled since the last
save comes again, so handlers must be idempotent or keep their own cursor (Recall saves its cursor
with its index rows). A graceful stop lets calls in progress finish and saves every cursor: no event
is delivered twice across it. After a start, ``sweep`` (and every ``sweep_interval_s``) compares every
session of every user in the directory with each consumer's cursor and catches up those behind, so a
consumer reaches the end of sessions whose agents never come back.

One server process owns the stream: two processes ingesting the same sessions would each deliver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from cloud_infer.stream.config import StreamSettings
from cloud_infer.stream.cursors import Cursors, StoreCursors, validate_consumer_name
from cloud_infer.stream.feed import Batch, Feed, Held
from cloud_infer.stream.metrics import CONSUMER, StreamMetrics
from cloud_infer.stream.protocol import ConsumerLag, StreamHealth
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.event_log import EventLog, Segment

logger = logging.getLogger(__name__)

# Called with (user_id, session_id, events): committed events of one session, seqs increasing. The
# events are shared with other consumers: never modify them. Frames read back from the log carry
# ``stored_key`` and no image; frames handed over from memory carry the image.
Handler = Callable[[str, str, Sequence[pb.Event]], Awaitable[None]]
_Source = Literal["memory", "log"]


class Users(Protocol):
    """Who to sweep: ``recall_store.directory.UserDirectory`` in a server."""

    async def users(self) -> list[str]: ...


@dataclass(eq=False)
class _Consumer:
    name: str
    handler: Handler
    cursors: Cursors
    slots: asyncio.Semaphore  # calls in progress at once, over all sessions
    feeds: dict[tuple[str, str], Feed] = field(default_factory=dict)
    held: Held = field(default_factory=Held)
    delivered: int = 0


@dataclass(frozen=True, slots=True)
class _Work:
    events: list[pb.Event]
    through: int
    source: _Source


class Fanout:
    def __init__(
        self,
        settings: StreamSettings,
        event_log: EventLog,
        directory: Users,
        clock: Callable[[], float] = time.monotonic,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._log = event_log
        self._directory = directory
        self._clock = clock
        self._consumers: dict[str, _Consumer] = {}
        self._jobs: list[asyncio.Task[None]] = []
        self._store_slots = asyncio.Semaphore(settings.store_concurrency)
        self._progress = asyncio.Event()
        self._closed = asyncio.Event()
        self._started = False
        self._last_sweep: float | None = None
        self.metrics = metrics or StreamMetrics()

    def register(
        self, name: str, handler: Handler, cursors: Cursors | None = None, concurrency: int | None = None
    ) -> None:
        """Deliver the committed stream to ``handler`` from now on (call before ``start``).

        Without ``cursors`` the fan-out keeps the consumer's progress in each user's space
        (``StoreCursors``); a consumer with state of its own passes cursors that read and write it.
        ``concurrency``: calls in progress at once over all sessions (default ``consumer_concurrency``);
        sessions waiting for a turn gather larger chunks meanwhile.
        """
        if self._started:
            raise RuntimeError("register every consumer before the stream starts")
        if validate_consumer_name(name) in self._consumers:
            raise ValueError(f"a consumer named {name!r} is registered already")
        cursors = cursors or StoreCursors(self._log.store, name)
        slots = asyncio.Semaphore(concurrency or self._settings.consumer_concurrency)
        self._consumers[name] = _Consumer(name, handler, cursors, slots)

    @property
    def consumers(self) -> list[str]:
        return list(self._consumers)

    def publish(
        self, user_id: str, session_id: str, events: Sequence[pb.Event], after_seq: int, size: int
    ) -> None:
        """Hand a just-committed batch to every consumer; never waits. ``after_seq``: the session's
        highest stored seq before this batch; ``size``: its bytes (what holding it in memory costs)."""
        if not events or self._closed.is_set():
            return
        batch, now = Batch(after_seq, events, size), self._clock()
        settings = self._settings
        for consumer in self._consumers.values():
            feed = self._feed(consumer, user_id, session_id)
            feed.committed(batch.last_seq, now)
            room = (
                len(feed.queue) < settings.queue_batches
                and consumer.held.bytes + size <= settings.queue_bytes
            )
            if not feed.offer(batch, room):
                self.metrics.overflows.add(1, {CONSUMER: consumer.name})
            feed.wake.set()

    def start(self) -> None:
        """Sweep every user's sessions now and every ``sweep_interval_s``; publish lag as metrics."""
        self._started = True
        self._jobs.append(asyncio.create_task(self._sweeping(), name="stream-sweep"))
        self._jobs.append(asyncio.create_task(self._reporting(), name="stream-metrics"))

    async def close(self) -> None:
        """Stop: let calls in progress finish (``close_grace_s``), then save every cursor."""
        self._closed.set()
        for job in self._jobs:
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
        feeds = [(c, f) for c in self._consumers.values() for f in c.feeds.values()]
        workers = [f.task for _, f in feeds if f.task is not None and not f.task.done()]
        for _, feed in feeds:
            feed.wake.set()
        if workers:
            _, pending = await asyncio.wait(workers, timeout=self._settings.close_grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for consumer, feed in feeds:
            if feed.cursor is not None and feed.saved < feed.cursor:
                try:
                    await self._save(consumer, feed)
                except Exception:
                    logger.exception("saving the %s cursor of a session failed at shutdown", consumer.name)

    async def sweep(self) -> int:
        """Start every consumer on every session it has not reached the end of; returns how many.

        A user whose space cannot be read is retried at the next sweep.
        """
        try:
            users = await self._directory.users()
        except Exception:
            logger.exception("the user directory cannot be read; the stream sweeps again next interval")
            return 0
        started = 0
        for user_id in users:
            try:
                heads = await self._log.session_heads(user_id)
                for session_id, last_seq in heads.items():
                    for consumer in self._consumers.values():
                        started += await self._catch_up(consumer, user_id, session_id, last_seq)
            except Exception:
                logger.exception("sweeping a user's sessions failed; retrying next interval")
        self._last_sweep = self._clock()
        return started

    async def idle(self) -> None:
        """Wait until every consumer has handled everything published or swept so far (tests, benches)."""
        while not all(f.caught_up for c in self._consumers.values() for f in c.feeds.values()):
            self._progress.clear()
            await self._progress.wait()

    def health(self) -> StreamHealth:
        now = self._clock()
        lags = []
        for consumer in self._consumers.values():
            feeds = list(consumer.feeds.values())
            behind = [f.behind_events() for f in feeds]
            lags.append(
                ConsumerLag(
                    consumer=consumer.name,
                    sessions=len(feeds),
                    sessions_behind=sum(1 for b in behind if b),
                    events_behind=sum(behind),
                    seconds_behind=round(max((f.behind_seconds(now) for f in feeds), default=0.0), 3),
                    queued_events=consumer.held.events,
                    reading_log=sum(1 for f in feeds if not f.accepting),
                    failing_sessions=sum(1 for f in feeds if f.failures),
                    delivered_events=consumer.delivered,
                )
            )
        since = None if self._last_sweep is None else round(now - self._last_sweep, 3)
        return StreamHealth(consumers=lags, last_sweep_s=since)

    def _feed(self, consumer: _Consumer, user_id: str, session_id: str) -> Feed:
        key = (user_id, session_id)
        feed = consumer.feeds.get(key)
        if feed is None:
            feed = consumer.feeds[key] = Feed(user_id, session_id, consumer.held)
            feed.task = asyncio.create_task(self._run(consumer, feed), name=f"stream-{consumer.name}")
        return feed

    async def _catch_up(self, consumer: _Consumer, user_id: str, session_id: str, last_seq: int) -> int:
        feed = consumer.feeds.get((user_id, session_id))
        if feed is None:
            cursor = await self._load(consumer, user_id, session_id)
            if cursor >= last_seq:
                return 0
            feed = self._feed(consumer, user_id, session_id)  # publish may have made it meanwhile
            if feed.cursor is None:
                feed.cursor, feed.saved, feed.saved_at = cursor, cursor, self._clock()
        if not feed.committed(last_seq, self._clock()):
            return 0
        feed.wake.set()
        return 1

    async def _run(self, consumer: _Consumer, feed: Feed) -> None:
        """The one worker of ``feed``: load its cursor, then hand over events until idle or closed."""
        work: _Work | None = None
        while not self._closed.is_set():
            feed.wake.clear()
            try:
                if feed.cursor is None:
                    loaded = await self._load(consumer, feed.user_id, feed.session_id)
                    feed.cursor, feed.saved, feed.saved_at = loaded, loaded, self._clock()
                work = work or self._from_memory(consumer, feed)
                if work is None and self._caught_up(feed):
                    if await self._idle(consumer, feed):
                        return
                    continue
                async with consumer.slots:
                    # Read the log only with a turn, so what is read is handed over at once.
                    work = work or await self._read_log(feed)
                    if work.events:
                        await consumer.handler(feed.user_id, feed.session_id, work.events)
                self._handled(consumer, feed, work)
                work = None
                if feed.saved < (feed.cursor or 0) and self._save_due(feed):
                    await self._save(consumer, feed)
            except asyncio.CancelledError:
                raise
            except Exception:
                await self._failed(consumer, feed)

    def _from_memory(self, consumer: _Consumer, feed: Feed) -> _Work | None:
        """The queued batches that continue the cursor, if any."""
        feed.drop_handled()
        taken = feed.take_contiguous(self._settings.chunk_events)
        if taken is None:
            return None
        events, through = taken
        return _Work(events, through, "memory")

    def _caught_up(self, feed: Feed) -> bool:
        """True when nothing committed is left to hand over (then memory takes batches again)."""
        if (feed.cursor or 0) < feed.gap_end():
            return False
        feed.accepting, feed.segments = True, []  # the queue is empty: nothing is missing
        feed.advance(feed.cursor or 0, self._clock())
        return True

    async def _read_log(self, feed: Feed) -> _Work:
        """The next chunk of what memory does not hold, from the event log (whose listing is kept)."""
        cursor, target = feed.cursor or 0, feed.gap_end()
        segments = [s for s in feed.segments if s.last_seq > cursor]
        if not segments or segments[-1].last_seq < target:
            # Listed after ``target`` was known: every segment up to it is committed, so listed.
            async with self._store_slots:
                segments = await self._log.segments(feed.user_id, feed.session_id, cursor)
        wanted = [s for s in segments if s.first_seq <= target]
        chunk: list[Segment] = []
        estimate = 0
        for segment in wanted:
            size = min(segment.last_seq, target) - max(segment.first_seq, cursor + 1) + 1
            if chunk and estimate + size > self._settings.chunk_events:
                break
            chunk.append(segment)
            estimate += size
        through = target if len(chunk) == len(wanted) else chunk[-1].last_seq
        events = await self._log.read_segments(feed.user_id, chunk, cursor, through, self._store_slots)
        feed.segments = [s for s in segments if s.last_seq > through]
        if not feed.queue and through >= feed.hwm:
            feed.accepting = True  # everything committed is in hand: memory continues from here
        return _Work(events, through, "log")

    def _handled(self, consumer: _Consumer, feed: Feed, work: _Work) -> None:
        attributes = {CONSUMER: consumer.name}
        for delay in feed.advance(work.through, self._clock()):
            self.metrics.delay.record(delay, attributes)
        if work.events:
            consumer.delivered += len(work.events)
            self.metrics.delivered.add(len(work.events), {**attributes, "source": work.source})
        feed.drop_handled()
        self._progress.set()

    def _save_due(self, feed: Feed) -> bool:
        return self._clock() - feed.saved_at >= self._settings.cursor_save_interval_s

    async def _load(self, consumer: _Consumer, user_id: str, session_id: str) -> int:
        async with self._store_slots:
            return await consumer.cursors.load(user_id, session_id)

    async def _save(self, consumer: _Consumer, feed: Feed) -> None:
        cursor = feed.cursor or 0
        async with self._store_slots:
            await consumer.cursors.save(feed.user_id, feed.session_id, cursor)
        feed.saved, feed.saved_at = cursor, self._clock()

    async def _idle(self, consumer: _Consumer, feed: Feed) -> bool:
        """Caught up: wait for a batch, save the cursor when due, forget the feed after a quiet while.

        Returns True when the feed was forgotten (its worker ends).
        """
        self._progress.set()
        dirty = feed.saved < (feed.cursor or 0)
        if dirty:
            timeout = max(0.0, feed.saved_at + self._settings.cursor_save_interval_s - self._clock())
        else:
            timeout = self._settings.idle_evict_s
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await feed.wake.wait()
            return False
        if dirty:
            await self._save(consumer, feed)
            return False
        if feed.caught_up and not feed.wake.is_set():
            del consumer.feeds[(feed.user_id, feed.session_id)]
            return True
        return False

    async def _failed(self, consumer: _Consumer, feed: Feed) -> None:
        feed.failures += 1
        self.metrics.failures.add(1, {CONSUMER: consumer.name})
        settings = self._settings
        delay = min(settings.retry_max_s, settings.retry_initial_s * 2 ** min(feed.failures - 1, 30))
        delay = random.uniform(delay / 2, delay)
        if feed.failures == 1:
            logger.exception("the %s consumer failed on a session; retrying", consumer.name)
        else:
            logger.warning(
                "the %s consumer failed on a session %d times in a row; next try in %.1f s",
                consumer.name,
                feed.failures,
                delay,
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._closed.wait()

    async def _sweeping(self) -> None:
        while True:
            await self.sweep()
            await asyncio.sleep(self._settings.sweep_interval_s)

    async def _reporting(self) -> None:
        while True:
            for lag in self.health().consumers:
                self.metrics.publish(lag)
            await asyncio.sleep(self._settings.metrics_interval_s)
