"""Fair turns at a shared, CPU-bound resource (search, the embedding model, OCR) between tenants.

``FairGate`` has a few slots. Waiters queue per (priority, tenant); a freed slot goes to the best
priority that has waiters, rotating among that priority's tenants, so one tenant's hundred queued
requests delay another tenant's single request by at most one request per slot, and a person waiting
(INTERACTIVE) goes before indexing (BACKGROUND). A waiter cancelled (or timed out) leaves the line.

``FairPool`` runs blocking calls on its own threads in such turns. A caller cancelled while its call
runs lets that call finish unseen (a thread cannot be interrupted) and its slot frees only then, so the
threads are never oversubscribed; this is why callers cut large work into small calls (``Embedder``
encodes a few texts per call). A pool of background work can run its threads at a lower OS priority
(``nice``), so on a busy machine the kernel gives the CPU to requests a person is waiting for first.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import os
import threading
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)


class Priority(enum.IntEnum):
    """Lower goes first."""

    INTERACTIVE = 0  # a person waits for it: a search, its query vector
    NORMAL = 1  # an API caller waits for it: the embeddings endpoint
    BACKGROUND = 2  # nobody waits: indexing what was just ingested


class FairGate:
    def __init__(self, slots: int) -> None:
        self._slots = slots
        self._busy = 0
        self._queued = 0
        self._waiting: dict[Priority, OrderedDict[str, deque[asyncio.Future[None]]]] = {
            priority: OrderedDict() for priority in Priority
        }

    @property
    def waiting(self) -> int:
        return self._queued

    @contextlib.asynccontextmanager
    async def turn(self, tenant: str, priority: Priority) -> AsyncIterator[None]:
        """Hold a slot for ``tenant`` while the block runs."""
        await self.acquire(tenant, priority)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, tenant: str, priority: Priority) -> None:
        if self._busy < self._slots and not self._queued:
            self._busy += 1
            return
        granted = asyncio.get_running_loop().create_future()
        self._waiting[priority].setdefault(tenant, deque()).append(granted)
        self._queued += 1
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # granted in the same instant: pass the slot on
            else:
                self._leave(tenant, priority, granted)
            raise

    def release(self) -> None:
        self._busy -= 1
        while self._busy < self._slots and (granted := self._next()) is not None:
            self._busy += 1
            granted.set_result(None)

    def _leave(self, tenant: str, priority: Priority, granted: asyncio.Future[None]) -> None:
        line = self._waiting[priority].get(tenant)
        if line is not None and granted in line:
            line.remove(granted)
            self._queued -= 1
            if not line:
                del self._waiting[priority][tenant]

    def _next(self) -> asyncio.Future[None] | None:
        for priority in Priority:
            queue = self._waiting[priority]
            while queue:
                tenant, line = next(iter(queue.items()))
                granted = line.popleft()
                self._queued -= 1
                del queue[tenant]
                if line:
                    queue[tenant] = line  # back of the rotation: the next tenant goes first
                if not granted.done():
                    return granted
        return None


class FairPool:
    def __init__(self, name: str, workers: int, nice: int = 0) -> None:
        self._name = name
        self._workers = workers
        self._nice = nice
        self._gate = FairGate(workers)
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, tenant: str, priority: Priority, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on one of the pool's threads, when ``tenant``'s turn at ``priority`` comes."""
        await self._gate.acquire(tenant, priority)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self._workers,
                thread_name_prefix=self._name,
                initializer=lower_thread_priority,
                initargs=(self._nice,),
            )
        running = asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))
        running.add_done_callback(self._finished)
        result: T = await asyncio.shield(running)
        return result

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _finished(self, running: asyncio.Future[Any]) -> None:
        self._gate.release()
        if not running.cancelled():
            running.exception()  # retrieved: an abandoned call's error is not reported as unhandled


def lower_thread_priority(nice: int) -> None:
    """Run this thread (and threads it starts) ``nice`` steps below normal; never raises."""
    if nice <= 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError:
        logger.warning("could not lower the priority of a worker thread; it runs at normal priority")
