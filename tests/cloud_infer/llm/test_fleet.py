"""A fleet of real OpenAI-compatible replicas (llama.cpp's server on CPU): health, routing, failover."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cloud_infer.llm.errors import LLMUnavailableError
from cloud_infer.llm.fleet import OpenAIFleet
from cloud_infer.llm.openai_compat import OpenAIEndpoint
from harness.llama_server import SERVED_MODEL, LlamaServer, running_llama_server
from harness.minio import free_port
from tests.support.llm import (
    ask,
    collect,
    deadline_in,
    request,
    texts,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def second_server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    with running_llama_server(model_path, tmp_path_factory.mktemp("llama-2") / "server.log") as server:
        yield server


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


@contextlib.asynccontextmanager
async def fleet_of(*urls: str) -> AsyncIterator[OpenAIFleet]:
    endpoints = [OpenAIEndpoint(base_url=url, api_key="k", model=SERVED_MODEL) for url in urls]
    fleet = OpenAIFleet(endpoints, health_interval_s=30, health_timeout_s=2)
    try:
        yield fleet
    finally:
        await fleet.close()


async def test_health_checks_mark_a_dead_replica_down(llama_server: LlamaServer) -> None:
    down = dead_url()
    async with fleet_of(llama_server.base_url, down) as fleet:
        await fleet.check_health()
        assert fleet.load() == {llama_server.base_url: (True, 0), down: (False, 0)}


async def test_concurrent_streams_go_to_the_least_loaded_replica(
    llama_server: LlamaServer, second_server: LlamaServer
) -> None:
    # Each llama.cpp server generates one request at a time: had both streams gone to one replica,
    # the second could not start before the first ended.
    async with fleet_of(llama_server.base_url, second_server.base_url) as fleet:
        long_story = ask("Write a very long story about a lighthouse keeper.")
        first = texts(fleet.generate(request(long_story, 600), deadline_in(30)))
        second = texts(fleet.generate(request(long_story, 600), deadline_in(30)))
        try:
            await anext(first)
            started = time.monotonic()
            await anext(second)
            assert time.monotonic() - started < 3.0
            assert fleet.load() == {llama_server.base_url: (True, 1), second_server.base_url: (True, 1)}
        finally:
            await first.aclose()
            await second.aclose()
        assert [in_flight for _, in_flight in fleet.load().values()] == [0, 0]


async def test_a_dead_replica_fails_over_before_the_first_token(llama_server: LlamaServer) -> None:
    down = dead_url()
    async with fleet_of(down, llama_server.base_url) as fleet:
        for _ in range(2):  # whichever replica the rotation tries first, the answer comes
            deltas, usage = await collect(fleet, ask("Say hi."), max_tokens=8)
            assert deltas
            assert usage.completion_tokens > 0
        assert fleet.load()[down] == (False, 0)


async def test_a_fleet_with_no_live_replica_is_unavailable_at_once() -> None:
    async with fleet_of(dead_url(), dead_url()) as fleet:
        started = time.monotonic()
        with pytest.raises(LLMUnavailableError, match="no replica could serve"):
            await collect(fleet, ask("hi"))
        assert time.monotonic() - started < 2.0


async def test_health_monitor_runs_in_the_background(llama_server: LlamaServer) -> None:
    down = dead_url()
    endpoints = [
        OpenAIEndpoint(base_url=u, api_key="k", model=SERVED_MODEL) for u in (llama_server.base_url, down)
    ]
    fleet = OpenAIFleet(endpoints, health_interval_s=0.2, health_timeout_s=1)
    try:
        await collect(fleet, ask("Say hi."), max_tokens=4)  # the first request starts the monitor
        deadline = time.monotonic() + 5
        while fleet.load()[down][0] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert fleet.load()[down] == (False, 0)
    finally:
        await fleet.close()


def served(server: LlamaServer) -> int:
    """Chat completions this server has answered, from its access log."""
    return server.log().count("POST /v1/chat/completions")


async def test_a_users_requests_stay_on_one_replica_for_its_prefix_cache(
    llama_server: LlamaServer, second_server: LlamaServer
) -> None:
    async with fleet_of(llama_server.base_url, second_server.base_url) as fleet:
        before = served(llama_server), served(second_server)
        for _ in range(4):  # the idle fleet's rotation would alternate replicas without affinity
            await collect(fleet, ask("Say hi."), max_tokens=2, affinity_key="alice")
        after = served(llama_server), served(second_server)
        assert sorted(b - a for a, b in zip(before, after, strict=True)) == [0, 4]
        # Without a key, requests spread over the idle replicas.
        for _ in range(4):
            await collect(fleet, ask("Say hi."), max_tokens=2)
        spread = [c - b for b, c in zip(after, (served(llama_server), served(second_server)), strict=True)]
        assert spread == [2, 2]
