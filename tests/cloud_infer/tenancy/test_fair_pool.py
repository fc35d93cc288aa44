"""Fair turns at shared CPU resources: tenants alternate, people go first, cancelled work leaves."""

from __future__ import annotations

import asyncio
import threading
import time

from cloud_infer.recall.embedder import Embedder
from cloud_infer.tenancy.fair_pool import FairGate, FairPool, Priority


async def test_a_burst_of_one_tenant_does_not_starve_another() -> None:
    gate, order = FairGate(1), []

    async def job(tenant: str, n: int) -> None:
        async with gate.turn(tenant, Priority.NORMAL):
            order.append(f"{tenant}{n}")
            await asyncio.sleep(0.005)

    flood = [asyncio.create_task(job("m", n)) for n in range(6)]
    await asyncio.sleep(0)
    late = [asyncio.create_task(job("b", n)) for n in range(2)]
    await asyncio.gather(*flood, *late)
    # b arrived after six of m's jobs, yet waited for at most one of them per turn.
    assert order == ["m0", "m1", "b0", "m2", "b1", "m3", "m4", "m5"]


async def test_interactive_turns_come_before_background_ones() -> None:
    gate, order = FairGate(1), []

    async def job(name: str, priority: Priority) -> None:
        async with gate.turn(name, priority):
            order.append(name)
            await asyncio.sleep(0.005)

    tasks = [asyncio.create_task(job(f"index{n}", Priority.BACKGROUND)) for n in range(4)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(job("search", Priority.INTERACTIVE)))
    await asyncio.gather(*tasks)
    assert order.index("search") == 1


async def test_a_cancelled_waiter_leaves_the_line_and_frees_nothing_twice() -> None:
    gate = FairGate(1)
    await gate.acquire("a", Priority.NORMAL)
    waiter = asyncio.create_task(gate.acquire("b", Priority.NORMAL))
    await asyncio.sleep(0)
    assert gate.waiting == 1
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert gate.waiting == 0
    gate.release()
    async with asyncio.timeout(1):
        await gate.acquire("c", Priority.NORMAL)  # the slot is free again, exactly once
    assert gate.waiting == 0


async def test_a_pool_thread_is_never_oversubscribed_by_cancelled_callers() -> None:
    pool, running, most = FairPool("test", workers=1), 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    first = asyncio.create_task(pool.run("a", Priority.NORMAL, work))
    await asyncio.sleep(0.01)
    first.cancel()  # its call keeps running in the thread; the slot frees when it ends
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.gather(*(pool.run("b", Priority.NORMAL, work) for _ in range(3)))
    pool.close()
    assert most == 1


async def test_a_large_embedding_request_lets_a_search_vector_through_between_slices() -> None:
    embedder = Embedder(slice_chars=2048)
    embedder.encode_now(["warm up"])
    finished: list[str] = []

    async def flood() -> None:
        await embedder.encode("mallory", ["lorem ipsum " * 100] * 16, Priority.NORMAL)
        finished.append("flood")

    async def search() -> None:
        vector = await embedder.encode("bob", ["invoice total"], Priority.INTERACTIVE)
        assert vector.shape == (1, 384)
        finished.append("search")

    flooding = asyncio.create_task(flood())
    await asyncio.sleep(0.05)
    await search()
    await flooding
    embedder.close()
    assert finished == ["search", "flood"]
