"""Who generates next: a priority queue in front of the backend with per-user concurrency.

At most ``slots`` requests run on the backend at once, and at most ``per_user`` of one user. When a slot
frees, the waiting request of the best priority (then the earliest) whose user is under its limit gets it,
so an interactive sidebar request passes queued background work, and one user's burst cannot hold every
slot while others wait. Waiting counts against the request's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from cloud_infer.llm.errors import LLMTimeoutError, LLMUnavailableError


class Priority(enum.IntEnum):
    """Lower runs first."""

    INTERACTIVE = 0  # a person is waiting: sidebar chat, ask, search rewriting
    BACKGROUND = 1  # nobody is watching: summaries, planning ahead, ops explanations


@dataclass(order=True)
class _Waiter:
    priority: int
    order: int
    user_id: str = field(compare=False)
    granted: asyncio.Future[None] = field(compare=False)


class Scheduler:
    def __init__(self, *, slots: int, per_user: int, queue_limit: int) -> None:
        self._slots = slots
        self._per_user = per_user
        self._queue_limit = queue_limit
        self._running: Counter[str] = Counter()
        self._waiting: list[_Waiter] = []
        self._order = itertools.count()

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return self._running.total()

    @contextlib.asynccontextmanager
    async def slot(self, user_id: str, priority: Priority, deadline: float) -> AsyncIterator[None]:
        """Hold one backend slot for ``user_id``; raise LLMTimeoutError if none frees before ``deadline``."""
        if len(self._waiting) >= self._queue_limit:
            raise LLMUnavailableError(f"the LLM queue is full ({self._queue_limit} waiting)")
        waiter = _Waiter(priority, next(self._order), user_id, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        self._dispatch()
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(waiter.granted)
        except BaseException as error:
            if waiter.granted.done():  # granted in the same instant: give the slot back
                self._release(user_id)
            else:
                self._waiting.remove(waiter)
                waiter.granted.cancel()
            if isinstance(error, TimeoutError):
                raise LLMTimeoutError("the request missed its deadline waiting for the model") from None
            raise
        try:
            yield
        finally:
            self._release(user_id)

    def _release(self, user_id: str) -> None:
        self._running[user_id] -= 1
        if self._running[user_id] <= 0:
            del self._running[user_id]
        self._dispatch()

    def _dispatch(self) -> None:
        while self._running.total() < self._slots:
            eligible = [w for w in self._waiting if self._running[w.user_id] < self._per_user]
            if not eligible:
                return
            waiter = min(eligible)
            self._waiting.remove(waiter)
            self._running[waiter.user_id] += 1
            waiter.granted.set_result(None)
