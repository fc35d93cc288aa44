"""The gateway's scheduler: priority order, per-user concurrency, queue limit, deadlines while waiting."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from cloud_infer.llm.errors import LLMTimeoutError, LLMUnavailableError
from cloud_infer.llm.scheduler import Priority, Scheduler


def deadline_in(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def hold(
    scheduler: Scheduler, user: str, priority: Priority, order: list[str], release: asyncio.Event
) -> None:
    async with scheduler.slot(user, priority, deadline_in(10)):
        order.append(user)
        await release.wait()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_interactive_requests_pass_queued_background_work() -> None:
    scheduler = Scheduler(slots=1, per_user=4, queue_limit=10)
    order: list[str] = []
    release = {name: asyncio.Event() for name in ("first", "bg1", "bg2", "ui")}
    tasks = [asyncio.create_task(hold(scheduler, "first", Priority.BACKGROUND, order, release["first"]))]
    await settle()
    for name, priority in (
        ("bg1", Priority.BACKGROUND),
        ("bg2", Priority.BACKGROUND),
        ("ui", Priority.INTERACTIVE),
    ):
        tasks.append(asyncio.create_task(hold(scheduler, name, priority, order, release[name])))
        await settle()
    assert (scheduler.running, scheduler.queued) == (1, 3)
    for name in ("first", "ui", "bg1", "bg2"):
        release[name].set()
        await settle()
    await asyncio.gather(*tasks)
    assert order == ["first", "ui", "bg1", "bg2"]
    assert (scheduler.running, scheduler.queued) == (0, 0)


async def test_one_user_cannot_hold_every_slot() -> None:
    scheduler = Scheduler(slots=3, per_user=2, queue_limit=10)
    order: list[str] = []
    release = asyncio.Event()
    tasks = [
        asyncio.create_task(hold(scheduler, user, Priority.INTERACTIVE, order, release))
        for user in ("alice", "alice", "alice", "bob")
    ]
    await settle()
    # alice's third request waits although a slot is free for it; bob's runs.
    assert sorted(order) == ["alice", "alice", "bob"]
    assert scheduler.queued == 1
    release.set()
    await asyncio.gather(*tasks)
    assert order.count("alice") == 3


async def test_a_full_queue_refuses_at_once() -> None:
    scheduler = Scheduler(slots=1, per_user=1, queue_limit=1)
    release = asyncio.Event()
    order: list[str] = []
    running = asyncio.create_task(hold(scheduler, "a", Priority.INTERACTIVE, order, release))
    waiting = asyncio.create_task(hold(scheduler, "b", Priority.INTERACTIVE, order, release))
    await settle()
    with pytest.raises(LLMUnavailableError, match="queue is full"):
        async with scheduler.slot("c", Priority.INTERACTIVE, deadline_in(5)):
            pass
    release.set()
    await asyncio.gather(running, waiting)


async def test_the_deadline_counts_while_waiting_and_leaves_the_queue_clean() -> None:
    scheduler = Scheduler(slots=1, per_user=1, queue_limit=5)
    release = asyncio.Event()
    running = asyncio.create_task(hold(scheduler, "a", Priority.INTERACTIVE, [], release))
    await settle()
    with pytest.raises(LLMTimeoutError):
        async with scheduler.slot("b", Priority.INTERACTIVE, deadline_in(0.05)):
            pass
    assert scheduler.queued == 0
    release.set()
    await running
    assert scheduler.running == 0


async def test_a_cancelled_waiter_gives_its_place_up() -> None:
    scheduler = Scheduler(slots=1, per_user=1, queue_limit=5)
    release = asyncio.Event()
    order: list[str] = []
    running = asyncio.create_task(hold(scheduler, "a", Priority.INTERACTIVE, order, release))
    await settle()
    waiter = asyncio.create_task(hold(scheduler, "b", Priority.INTERACTIVE, order, release))
    await settle()
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    assert scheduler.queued == 0
    release.set()
    await running
    async with scheduler.slot("c", Priority.INTERACTIVE, deadline_in(1)):
        assert scheduler.running == 1
    assert order == ["a"]
