"""A fleet of OpenAI-compatible replicas (``vllm serve``) behind one backend: health-checked, least-loaded.

Every replica is probed every ``health_interval_s``; a request goes to the healthy replica with the fewest
requests in flight from this process (ties rotate, so an idle fleet still spreads), except that a user's
requests stay on the replica that served their last one while it is at most ``AFFINITY_SLACK`` requests
busier than the least loaded: each replica has its own prefix cache, and a user's prompts share their
prefix (the same window, the same excerpts), so spreading them would re-evaluate it everywhere.

A replica that fails before the first token is marked down and the request moves to the next one, so a
dead replica costs a connection attempt, not an error; after the first token a failure is the caller's,
since a half-sent answer cannot be replayed. When no replica looks healthy every one is tried, since
health may be stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import OrderedDict
from collections.abc import Sequence

from cloud_infer.llm.backend import Generation, GenerationRequest
from cloud_infer.llm.errors import LLMUnavailableError
from cloud_infer.llm.openai_compat import OpenAIEndpoint

logger = logging.getLogger(__name__)

AFFINITY_SLACK = 2
_AFFINITY_KEYS = 100_000  # users remembered; the oldest are forgotten first


class _Replica:
    def __init__(self, endpoint: OpenAIEndpoint) -> None:
        self.endpoint = endpoint
        self.healthy = True  # until a probe or a request says otherwise
        self.in_flight = 0


class OpenAIFleet:
    """A ``ChatBackend`` over several ``OpenAIEndpoint`` replicas of one model."""

    def __init__(
        self, endpoints: Sequence[OpenAIEndpoint], *, health_interval_s: float, health_timeout_s: float
    ) -> None:
        if not endpoints:
            raise ValueError("a fleet needs at least one endpoint")
        self._replicas = [_Replica(endpoint) for endpoint in endpoints]
        self.name = f"fleet[{len(endpoints)}]:{endpoints[0].name.split('@')[0]}"
        self.max_concurrency = sum(endpoint.max_concurrency for endpoint in endpoints)
        self._interval_s = health_interval_s
        self._timeout_s = health_timeout_s
        self._rotation = itertools.count()
        self._affinity: OrderedDict[str, _Replica] = OrderedDict()
        self._monitor: asyncio.Task[None] | None = None

    def load(self) -> dict[str, tuple[bool, int]]:
        """Each replica's base URL → (healthy, requests in flight)."""
        return {r.endpoint.base_url: (r.healthy, r.in_flight) for r in self._replicas}

    async def check_health(self) -> None:
        """Probe every replica now (the monitor does this every ``health_interval_s``)."""
        results = await asyncio.gather(*(r.endpoint.healthy(self._timeout_s) for r in self._replicas))
        for replica, probed in zip(self._replicas, results, strict=True):
            # A replica streaming to us is alive even when too busy to answer a probe in time (llama.cpp's
            # server answers nothing while it generates); a hung one fails its requests by their deadline.
            healthy = probed or replica.in_flight > 0
            if healthy != replica.healthy:
                logger.warning("replica %s is %s", replica.endpoint.base_url, "up" if healthy else "down")
            replica.healthy = healthy

    async def generate(self, request: GenerationRequest, deadline: float) -> Generation:
        self._watch()
        failures: list[str] = []
        for replica in self._candidates(request.affinity_key):
            started = False
            replica.in_flight += 1
            try:
                async with contextlib.aclosing(replica.endpoint.generate(request, deadline)) as stream:
                    async for item in stream:
                        if not started and request.affinity_key:
                            self._remember(request.affinity_key, replica)
                        started = True
                        yield item
                return
            except LLMUnavailableError as error:
                if started:
                    raise
                replica.healthy = False
                failures.append(str(error))
                logger.warning("replica %s failed, trying another: %s", replica.endpoint.base_url, error)
            finally:
                replica.in_flight -= 1
        raise LLMUnavailableError(f"no replica could serve: {'; '.join(failures)}")

    def _candidates(self, affinity_key: str) -> list[_Replica]:
        """Healthy replicas, least loaded first (or all of them when none looks healthy)."""
        turn = next(self._rotation)
        count = len(self._replicas)
        rotated = [self._replicas[(turn + i) % count] for i in range(count)]
        healthy = [r for r in rotated if r.healthy] or rotated
        ordered = sorted(healthy, key=lambda r: r.in_flight)  # stable: ties keep the rotation
        affine = self._affinity.get(affinity_key) if affinity_key else None
        if affine in ordered and affine.in_flight <= ordered[0].in_flight + AFFINITY_SLACK:
            ordered.remove(affine)
            ordered.insert(0, affine)
        return ordered

    def _remember(self, affinity_key: str, replica: _Replica) -> None:
        self._affinity[affinity_key] = replica
        self._affinity.move_to_end(affinity_key)
        if len(self._affinity) > _AFFINITY_KEYS:
            self._affinity.popitem(last=False)

    def _watch(self) -> None:
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.create_task(self._monitor_health(), name="llm-fleet-health")

    async def _monitor_health(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.check_health()
            except Exception:  # a probe bug must not end health checking for good
                logger.exception("health check failed")

    async def close(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        await asyncio.gather(*(r.endpoint.close() for r in self._replicas))
