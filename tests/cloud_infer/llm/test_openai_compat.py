"""One OpenAI-compatible endpoint against a real OpenAI-compatible server: llama.cpp's, on CPU."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from cloud_infer.llm.errors import LLMError, LLMTimeoutError, LLMUnavailableError
from cloud_infer.llm.openai_compat import OpenAIEndpoint
from harness.llama_server import SERVED_MODEL, LlamaServer
from harness.minio import free_port
from tests.support.llm import (
    INVOICE_SCHEMA,
    ask,
    collect,
    consume_forever,
    deadline_in,
    first_delta_after,
    request,
    take,
    texts,
)

pytestmark = pytest.mark.slow


def endpoint(base_url: str) -> OpenAIEndpoint:
    # llama.cpp's server takes a schema as a json_object response format.
    return OpenAIEndpoint(
        base_url=base_url, api_key="test-key", model=SERVED_MODEL, schema_format="json_object"
    )


@pytest.fixture
async def client(llama_server: LlamaServer) -> AsyncIterator[OpenAIEndpoint]:
    llm = endpoint(llama_server.base_url)
    yield llm
    await llm.close()


async def test_streams_an_answer_in_several_deltas_then_its_usage(client: OpenAIEndpoint) -> None:
    deltas, usage = await collect(client, ask("Count from 1 to 20, separated by commas."), max_tokens=24)
    assert len(deltas) >= 2
    assert all(deltas)
    assert "1" in "".join(deltas)
    # llama.cpp's server reports no usage in a stream: one chunk is one token.
    assert usage.completion_tokens == len(deltas)


async def test_a_json_schema_constrains_the_output(client: OpenAIEndpoint) -> None:
    prompt = ask("Extract the vendor and the amount from: Invoice from Contoso, total due 1234.50 USD.")
    deltas, _ = await collect(client, prompt, max_tokens=60, json_schema=INVOICE_SCHEMA)
    value = json.loads("".join(deltas))
    assert isinstance(value["vendor"], str)
    assert isinstance(value["amount"], int | float)


async def test_health_probe_knows_the_served_model(client: OpenAIEndpoint, llama_server: LlamaServer) -> None:
    assert await client.healthy(timeout_s=2)
    other = OpenAIEndpoint(base_url=llama_server.base_url, api_key="k", model="not-served")
    down = endpoint(f"http://127.0.0.1:{free_port()}/v1")
    try:
        assert not await other.healthy(timeout_s=2)
        assert not await down.healthy(timeout_s=2)
    finally:
        await other.close()
        await down.close()


async def test_closing_the_stream_lets_the_next_request_start_promptly(client: OpenAIEndpoint) -> None:
    stream = texts(
        client.generate(
            request(ask("Write a very long story about a lighthouse keeper."), 900), deadline_in(30)
        )
    )
    assert len(await take(stream, 3)) == 3
    await stream.aclose()
    # The server generates one request at a time, so this waits unless the first was dropped.
    delta, waited_s = await first_delta_after(client, ask("Say hi."))
    assert delta
    assert waited_s < 3.0


async def test_a_tiny_deadline_raises_timeout(client: OpenAIEndpoint) -> None:
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError):
        await collect(client, ask("Write a long story."), max_tokens=900, deadline_s=0.05)
    assert time.monotonic() - started < 0.5


async def test_a_stream_that_ends_unfinished_is_an_error(client: OpenAIEndpoint) -> None:
    # llama.cpp's server answers a prompt that overflows its context with 200 and an empty stream.
    with pytest.raises(LLMError) as caught:
        await collect(client, ask("lighthouse " * 3000), max_tokens=8)
    assert not isinstance(caught.value, LLMTimeoutError | LLMUnavailableError)


async def test_a_server_that_is_down_is_unavailable_at_once() -> None:
    llm = endpoint(f"http://127.0.0.1:{free_port()}/v1")
    started = time.monotonic()
    try:
        with pytest.raises(LLMUnavailableError):
            await collect(llm, ask("hi"))
    finally:
        await llm.close()
    assert time.monotonic() - started < 2.0


async def test_cancelling_the_consumer_closes_the_stream(client: OpenAIEndpoint) -> None:
    started = asyncio.Event()
    stream = client.generate(request(ask("Write a very long story."), 900), deadline_in(30))
    consumer = asyncio.create_task(consume_forever(stream, started))
    await asyncio.wait_for(started.wait(), timeout=20)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await stream.aclose()
    _, waited_s = await first_delta_after(client, ask("Say hi."))
    assert waited_s < 3.0
