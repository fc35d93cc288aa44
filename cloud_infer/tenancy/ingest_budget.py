"""What one user's agents may store: a rate (events, frames, bytes), open streams, a storage quota.

The rate is a leaky bucket per user (``aiolimiter``) that a batch waits on before it is stored: an
agent over its rate gets its acks later and keeps the rest in its spool, so nothing is refused or lost
and a flood costs the other tenants nothing. Streams beyond the cap, and batches of a user whose space
is over quota, are refused with RESOURCE_EXHAUSTED, which agents retry with backoff.

Usage is measured once per user per process (listing the space) and then counted forward by what
ingest stores; it is re-measured in the background every ``remeasure_s`` so erasure and retention
are seen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from aiolimiter import AsyncLimiter

from cloud_infer.errors import QuotaExceededError, RateLimitedError
from cloud_infer.tenancy.config import TenantLimitSettings
from recall_store.store import ObjectStore

logger = logging.getLogger(__name__)
V = TypeVar("V")

_MAX_TRACKED_USERS = 100_000  # buckets and usage kept for the most recently active users


@dataclass
class _Usage:
    bytes: int
    measured_at: float
    remeasuring: asyncio.Task[None] | None = None


class IngestBudget:
    def __init__(self, limits: TenantLimitSettings, store: ObjectStore, remeasure_s: float = 600.0) -> None:
        self._limits = limits
        self._store = store
        self._remeasure_s = remeasure_s
        self._events: OrderedDict[str, AsyncLimiter] = OrderedDict()
        self._frames: OrderedDict[str, AsyncLimiter] = OrderedDict()
        self._bytes: OrderedDict[str, AsyncLimiter] = OrderedDict()
        self._usage: OrderedDict[str, _Usage] = OrderedDict()
        self._streams: defaultdict[str, int] = defaultdict(int)

    @asynccontextmanager
    async def stream(self, user_id: str) -> AsyncIterator[None]:
        """Hold one of the user's stream slots; RateLimitedError when all are taken."""
        if self._streams[user_id] >= self._limits.ingest_streams:
            raise RateLimitedError(f"more than {self._limits.ingest_streams} streams of one user", 5.0)
        self._streams[user_id] += 1
        try:
            yield
        finally:
            self._streams[user_id] -= 1
            if not self._streams[user_id]:
                del self._streams[user_id]

    async def admit(self, user_id: str, events: int, frames: int, size: int) -> None:
        """Wait until the user's rates allow storing ``events`` events (``frames`` of them screen frames)
        of ``size`` bytes; refuse past quota.

        Raises QuotaExceededError, or StoreError when the first measurement of the space fails.
        """
        used = await self._used(user_id)
        if used + size > self._limits.storage_quota_bytes:
            raise QuotaExceededError(
                f"the user's space holds {used} bytes; its quota is {self._limits.storage_quota_bytes}"
            )
        limits = self._limits
        await _bucket(self._events, user_id, limits.ingest_events_per_s, limits.ingest_burst_events).acquire(
            min(events, limits.ingest_burst_events)
        )
        if frames:
            frame_bucket = _bucket(
                self._frames, user_id, limits.ingest_frames_per_s, limits.ingest_burst_frames
            )
            await frame_bucket.acquire(min(frames, limits.ingest_burst_frames))
        await _bucket(self._bytes, user_id, limits.ingest_bytes_per_s, limits.ingest_burst_bytes).acquire(
            min(size, limits.ingest_burst_bytes)
        )

    def stored(self, user_id: str, size: int) -> None:
        """Count ``size`` bytes just stored for the user."""
        if (usage := self._usage.get(user_id)) is not None:
            usage.bytes += size

    async def _used(self, user_id: str) -> int:
        usage = self._usage.get(user_id)
        if usage is None:
            usage = _Usage(await self._store.usage(user_id), time.monotonic())
            _remember(self._usage, user_id, usage)
        elif time.monotonic() - usage.measured_at > self._remeasure_s and usage.remeasuring is None:
            usage.remeasuring = asyncio.create_task(self._remeasure(user_id, usage))
        self._usage.move_to_end(user_id)
        return usage.bytes

    async def _remeasure(self, user_id: str, usage: _Usage) -> None:
        started = usage.bytes
        try:
            measured = await self._store.usage(user_id)
            # What was stored while measuring may or may not be in the listing: count it once more.
            usage.bytes = measured + max(0, usage.bytes - started)
            usage.measured_at = time.monotonic()
        except Exception:
            logger.warning("re-measuring a user's storage failed; keeping the running count")
        finally:
            usage.remeasuring = None


def _bucket(buckets: OrderedDict[str, AsyncLimiter], user_id: str, rate: float, burst: int) -> AsyncLimiter:
    bucket = buckets.get(user_id)
    if bucket is None:
        # aiolimiter's capacity is max_rate per time_period: a burst of `burst` refilling at `rate`.
        bucket = AsyncLimiter(burst, burst / rate)
        _remember(buckets, user_id, bucket)
    buckets.move_to_end(user_id)
    return bucket


def _remember(table: OrderedDict[str, V], key: str, value: V) -> None:
    table[key] = value
    while len(table) > _MAX_TRACKED_USERS:
        table.popitem(last=False)
