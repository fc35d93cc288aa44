"""Admission of API requests per user and resource: a rate with a small burst, and a cap in flight.

Every protected route names its resource (``cloud_infer.http_guard``); a request over either limit is
refused at once with 429 and a ``Retry-After``, before its body is read, so a flood costs the server
one token check per request. The rate is a leaky bucket (``aiolimiter``) holding a sixth of the
period's allowance (at least five): a person typing a query or opening a timeline is never refused,
while a flood is held to the sustained rate instead of spending a minute's allowance in its first
second.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from aiolimiter import AsyncLimiter

from cloud_infer.errors import RateLimitedError
from cloud_infer.tenancy.config import TenantLimitSettings

Resource = Literal[
    "search",
    "timeline",
    "frames",
    "export",
    "erase",
    "embeddings",
    "commands",
    "experience",
    "api",
    "websocket",
    "login",
]


_MINUTE, _HOUR = 60.0, 3600.0
_BURST_SHARE = 6  # the bucket holds 1/6 of a period's allowance: 10 s worth of a per-minute rate
_MIN_BURST = 5
_MAX_TRACKED = 100_000  # buckets kept for the most recently active (resource, user) pairs


@dataclass(frozen=True, slots=True)
class ResourceLimit:
    allowance: int  # requests per period
    period_s: float
    concurrency: int | None

    @property
    def burst(self) -> int:
        # Small allowances (erasures, exports) still let a person do a few in a row.
        return max(self.allowance // _BURST_SHARE, min(self.allowance, _MIN_BURST))

    def describe(self) -> str:
        return f"{self.allowance} per {'hour' if self.period_s == _HOUR else 'minute'}"


def resource_limits(settings: TenantLimitSettings) -> dict[Resource, ResourceLimit]:
    return {
        "search": ResourceLimit(settings.search_per_minute, _MINUTE, settings.search_concurrency),
        "timeline": ResourceLimit(settings.timeline_per_minute, _MINUTE, 2),
        "frames": ResourceLimit(settings.frames_per_minute, _MINUTE, settings.frames_concurrency),
        "export": ResourceLimit(settings.export_per_hour, _HOUR, 1),
        "erase": ResourceLimit(settings.erase_per_minute, _MINUTE, 1),
        "embeddings": ResourceLimit(settings.embeddings_per_minute, _MINUTE, settings.embeddings_concurrency),
        "commands": ResourceLimit(settings.commands_per_minute, _MINUTE, settings.commands_concurrency),
        "experience": ResourceLimit(settings.experience_per_minute, _MINUTE, 2),
        "api": ResourceLimit(settings.api_per_minute, _MINUTE, settings.api_concurrency),
        # A /desk tab opens about five at once and again at each token refresh or reconnect.
        "websocket": ResourceLimit(120, _MINUTE, settings.websockets),
        "login": ResourceLimit(settings.logins_per_minute, _MINUTE, None),
    }


class RequestLimiter:
    def __init__(self, settings: TenantLimitSettings) -> None:
        self._limits = resource_limits(settings)
        self._buckets: OrderedDict[tuple[str, str], AsyncLimiter] = OrderedDict()
        self._in_flight: Counter[tuple[str, str]] = Counter()

    @asynccontextmanager
    async def admit(self, resource: Resource, key: str) -> AsyncIterator[None]:
        """Hold one of ``key``'s places for ``resource``; RateLimitedError when over a limit."""
        limit = self._limits[resource]
        slot = (resource, key)
        if limit.concurrency is not None and self._in_flight[slot] >= limit.concurrency:
            raise RateLimitedError(f"more than {limit.concurrency} {resource} requests at once", 1.0)
        bucket = self._bucket(slot, limit)
        if not bucket.has_capacity():
            retry_after = limit.period_s / limit.allowance  # one request's worth of leak
            raise RateLimitedError(f"more than {limit.describe()} {resource} requests", retry_after)
        await bucket.acquire()  # has capacity: returns at once
        self._in_flight[slot] += 1
        try:
            yield
        finally:
            self._in_flight[slot] -= 1
            if self._in_flight[slot] <= 0:
                del self._in_flight[slot]

    def _bucket(self, slot: tuple[str, str], limit: ResourceLimit) -> AsyncLimiter:
        bucket = self._buckets.get(slot)
        if bucket is None:
            # A bucket of `burst` requests leaking at allowance / period.
            bucket = AsyncLimiter(limit.burst, limit.period_s * limit.burst / limit.allowance)
            self._buckets[slot] = bucket
            while len(self._buckets) > _MAX_TRACKED:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(slot)
        return bucket
