"""The OpenAI-compatible client against a real OpenAI-compatible server: llama.cpp's, on CPU."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from cloud_infer.llm.errors import LLMError, LLMTimeoutError, LLMUnavailableError
from cloud_infer.llm.openai_compat import OpenAICompatible
from tests.cloud_infer.llm.conftest import SERVED_MODEL, LlamaServer, ask, collect, first_delta_after, take
from tests.support.minio import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
async def client(llama_server: LlamaServer) -> AsyncIterator[OpenAICompatible]:
    llm = OpenAICompatible(
        base_url=llama_server.base_url, api_key="test-key", model=SERVED_MODEL, timeout_s=30
    )
    yield llm
    await llm.close()


async def test_streams_an_answer_in_several_deltas(client: OpenAICompatible) -> None:
    deltas = await collect(client, ask("Count from 1 to 20, separated by commas."), max_tokens=24)
    assert len(deltas) >= 2
    assert all(deltas)
    assert "1" in "".join(deltas)


async def test_breaking_out_lets_the_next_request_start_promptly(client: OpenAICompatible) -> None:
    stream = client.stream_chat(ask("Write a very long story about a lighthouse keeper."), max_tokens=900)
    received = await take(stream, 3)
    assert len(received) == 3
    await stream.aclose()  # type: ignore[attr-defined]
    # The server generates one request at a time, so this waits unless the first was dropped.
    delta, waited_s = await first_delta_after(client, ask("Say hi."))
    assert delta
    assert waited_s < 3.0


async def test_a_tiny_deadline_raises_timeout(client: OpenAICompatible) -> None:
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError):
        await collect(client, ask("Write a long story."), max_tokens=900, deadline_s=0.05)
    assert time.monotonic() - started < 0.5


async def test_a_stream_that_ends_unfinished_is_an_error(client: OpenAICompatible) -> None:
    # llama.cpp's server answers a prompt that overflows its context with 200 and an empty stream.
    with pytest.raises(LLMError) as caught:
        await collect(client, ask("lighthouse " * 3000), max_tokens=8)
    assert not isinstance(caught.value, LLMTimeoutError | LLMUnavailableError)


async def test_a_server_that_is_down_is_unavailable_at_once() -> None:
    llm = OpenAICompatible(
        base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="k", model=SERVED_MODEL, timeout_s=30
    )
    started = time.monotonic()
    try:
        with pytest.raises(LLMUnavailableError):
            await collect(llm, ask("hi"))
    finally:
        await llm.close()
    assert time.monotonic() - started < 2.0


async def test_cancelling_the_consumer_closes_the_stream(client: OpenAICompatible) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in client.stream_chat(ask("Write a very long story."), max_tokens=900):
            started.set()

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), timeout=20)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    _, waited_s = await first_delta_after(client, ask("Say hi."))
    assert waited_s < 3.0
