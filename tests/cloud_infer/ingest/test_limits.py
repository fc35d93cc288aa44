"""What one tenant's agents may cost the ingest server: streams, Hello, rate, storage quota.

3f6b07e held 2,000 streams that never sent Hello forever, and one ingest token stored 482,750 events
in 65 s with no rate limit or quota.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from cloud_infer.config import ServerSettings
from cloud_infer.server import create_grpc_server, ingest_service
from cloud_infer.tenancy.config import TenantLimitSettings
from tests.support.cloud import AgentStream, FaultyStore, hello, ingest_token, metrics, now_ns
from tests.support.ingest_server import IngestServer


async def _serve(settings: ServerSettings, store: FaultyStore, limits: TenantLimitSettings) -> IngestServer:
    service = ingest_service(settings, store, limits=limits)
    server, port = await create_grpc_server(settings, service)
    return IngestServer(server, port, service)


@pytest.fixture
async def limited(settings: ServerSettings, store: FaultyStore) -> AsyncIterator[IngestServer]:
    limits = TenantLimitSettings(ingest_streams=3, ingest_events_per_s=50, ingest_burst_events=50)
    running = await _serve(settings.model_copy(update={"hello_timeout_s": 1.0}), store, limits)
    yield running
    await running.server.stop(None)


@pytest.fixture
async def small_quota(settings: ServerSettings, store: FaultyStore) -> AsyncIterator[IngestServer]:
    running = await _serve(settings, store, TenantLimitSettings(storage_quota_bytes=20_000))
    yield running
    await running.server.stop(None)


async def test_streams_that_never_say_hello_are_closed(limited: IngestServer, user: str) -> None:
    silent = [AgentStream(limited.target, ingest_token(user, f"desk-{n}")) for n in range(20)]
    started = time.monotonic()
    results = await asyncio.gather(*(stream.status() for stream in silent))
    for stream in silent:
        await stream.close()
    assert time.monotonic() - started < 5
    assert {code for code, _ in results} == {grpc.StatusCode.INVALID_ARGUMENT}
    assert all("no Hello within 1 s" in details for _, details in results)


async def test_one_user_holds_at_most_its_share_of_streams(limited: IngestServer, user: str) -> None:
    open_streams = [AgentStream(limited.target, ingest_token(user, f"desk-{n}")) for n in range(3)]
    for n, stream in enumerate(open_streams):
        await stream.open(user, f"desk-{n}")
    extra = AgentStream(limited.target, ingest_token(user, "desk-9"))
    code, details = await extra.status(hello(user, "desk-9"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "streams" in details
    other = AgentStream(limited.target, ingest_token("bob@example.com", "desk-0"))
    assert (await other.open("bob@example.com", "desk-0")).acked_seq == 0, "another user is not affected"
    for stream in [*open_streams, extra, other]:
        await stream.close()


async def test_a_user_over_the_ingest_rate_is_slowed_not_refused(limited: IngestServer, user: str) -> None:
    agent = AgentStream(limited.target, ingest_token(user, "desk-1"))
    await agent.open(user, "desk-1")
    t0 = now_ns()
    started = time.monotonic()
    for n in range(3):  # 150 events at 50 a second after a burst of 50: about 2 s
        assert await agent.ack([metrics(50 * n + i + 1, t0 + i) for i in range(50)]) == 50 * (n + 1)
    assert time.monotonic() - started > 1.5
    await agent.close()


async def test_a_user_over_quota_is_refused_and_loses_nothing_stored(
    small_quota: IngestServer, store: FaultyStore, user: str
) -> None:
    agent = AgentStream(small_quota.target, ingest_token(user, "desk-1"))
    await agent.open(user, "desk-1")
    t0, seq = now_ns(), 0
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        while seq < 10_000:
            assert await agent.ack([metrics(seq + i + 1, t0 + seq + i) for i in range(50)]) == seq + 50
            seq += 50
    await agent.close()
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "quota" in (refused.value.details() or "")
    assert 0 < await store.usage(user) <= 20_000 + 8_000, "stopped at the quota (one batch over at most)"
