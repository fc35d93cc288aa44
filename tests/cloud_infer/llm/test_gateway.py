"""The gateway over the real embedded llama.cpp backend: streaming, limits, order, deadlines, accounting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.embedded import EmbeddedLlama
from cloud_infer.llm.errors import LLMRateLimitedError, LLMTimeoutError, LLMUnavailableError
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.llm.prompts import layout
from cloud_infer.llm.scheduler import Priority
from tests.support.llm import ask
from tests.support.otel import span_exporter

LONG_TASK = ask("Write a very long story about a lighthouse keeper, with many chapters.")


class Invoice(BaseModel):
    vendor: str
    amount: float


def gateway_over(embedded: EmbeddedLlama, **settings: object) -> LLMGateway:
    return LLMGateway(LLMSettings(backend="embedded", **settings), embedded)  # type: ignore[arg-type]


async def first_delta(stream: AsyncIterator[str]) -> str:
    return await anext(stream)


async def test_streams_and_accounts_tokens_per_user_and_feature(embedded: EmbeddedLlama) -> None:
    gateway = gateway_over(embedded)
    deltas = [
        d
        async for d in gateway.stream_chat(
            "alice", ask("Count from 1 to 10."), feature="test.count", max_tokens=12
        )
    ]
    assert len(deltas) >= 2
    usage = gateway.usage("alice")
    assert usage.requests == 1
    assert usage.completion_tokens == 12
    assert usage.prompt_tokens > 5
    assert usage.features["test.count"].completion_tokens == 12
    assert gateway.usage("bob").requests == 0


async def test_structured_output_is_a_valid_instance(embedded: EmbeddedLlama) -> None:
    gateway = gateway_over(embedded)
    line = "Invoice from Contoso Consulting, total due 1234.50 USD."
    invoice = await gateway.generate_object(
        "alice",
        ask(f"Extract the vendor and the amount from: {line}"),
        Invoice,
        feature="test.extract",
        max_tokens=60,
    )
    assert isinstance(invoice, Invoice)
    assert invoice.vendor


async def test_closing_the_stream_mid_generation_frees_the_slot_at_once(embedded: EmbeddedLlama) -> None:
    gateway = gateway_over(embedded)
    stream = gateway.stream_chat("alice", LONG_TASK, feature="test", max_tokens=900)
    await first_delta(stream)
    assert gateway.scheduler.running == 1
    await stream.aclose()
    assert gateway.scheduler.running == 0
    started = time.monotonic()
    await gateway.complete("bob", ask("Say hi."), feature="test", max_tokens=4)
    assert time.monotonic() - started < 1.5  # the 900-token story did not go on


async def test_cancelling_the_consumer_cancels_the_request(embedded: EmbeddedLlama) -> None:
    exporter = span_exporter()
    gateway = gateway_over(embedded)
    got_one = asyncio.Event()

    async def sidebar() -> None:
        async with contextlib.aclosing(
            gateway.stream_chat("alice", LONG_TASK, feature="test.cancel", max_tokens=900)
        ) as s:
            async for _ in s:
                got_one.set()

    task = asyncio.create_task(sidebar())
    await asyncio.wait_for(got_one.wait(), 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gateway.scheduler.running == 0
    spans = [
        s
        for s in exporter.get_finished_spans()
        if s.attributes and s.attributes.get("shadowdesk.llm.feature") == "test.cancel"
    ]
    assert [s.attributes["shadowdesk.llm.outcome"] for s in spans if s.attributes] == ["cancelled"]


async def test_a_deadline_counts_from_arrival_including_the_queue(embedded: EmbeddedLlama) -> None:
    gateway = gateway_over(embedded)
    holder = gateway.stream_chat("alice", LONG_TASK, feature="test", max_tokens=900)
    await first_delta(holder)
    try:
        started = time.monotonic()
        with pytest.raises(LLMTimeoutError):
            await gateway.complete("bob", ask("Say hi."), feature="test", deadline_s=0.3)
        assert 0.25 < time.monotonic() - started < 1.0
        assert gateway.scheduler.queued == 0
    finally:
        await holder.aclose()
    with pytest.raises(LLMTimeoutError):  # and a deadline that ends mid-generation
        await gateway.complete("bob", LONG_TASK, feature="test", max_tokens=900, deadline_s=0.3)
    assert gateway.scheduler.running == 0


async def test_the_rate_limit_refuses_one_user_and_not_another(embedded: EmbeddedLlama) -> None:
    gateway = gateway_over(embedded, user_requests_per_minute=2)
    for _ in range(2):
        await gateway.complete("alice", ask("Say hi."), feature="test", max_tokens=2)
    with pytest.raises(LLMRateLimitedError) as refused:
        await gateway.complete("alice", ask("Say hi."), feature="test", max_tokens=2)
    assert 0 < refused.value.retry_after_s <= 60
    assert await gateway.complete("bob", ask("Say hi."), feature="test", max_tokens=2)
    assert gateway.usage("alice").requests == 2  # the refused request cost nothing


async def test_interactive_requests_run_before_queued_background_work(embedded: EmbeddedLlama) -> None:
    gateway = gateway_over(embedded, user_concurrency=4)
    order: list[str] = []

    async def request(user: str, priority: Priority) -> None:
        async for _ in gateway.stream_chat(
            user, ask("Say hi."), feature="test", priority=priority, max_tokens=3
        ):
            if user not in order:
                order.append(user)

    holder = gateway.stream_chat("holder", LONG_TASK, feature="test", max_tokens=900)
    await first_delta(holder)
    tasks = []
    for user, priority in (
        ("summary-1", Priority.BACKGROUND),
        ("summary-2", Priority.BACKGROUND),
        ("summary-3", Priority.BACKGROUND),
        ("sidebar", Priority.INTERACTIVE),
    ):
        tasks.append(asyncio.create_task(request(user, priority)))
        while gateway.scheduler.queued < len(tasks):
            await asyncio.sleep(0.01)
    await holder.aclose()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert order == ["sidebar", "summary-1", "summary-2", "summary-3"]


async def test_a_full_queue_is_unavailable(embedded: EmbeddedLlama) -> None:
    gateway = gateway_over(embedded, queue_limit=1)
    holder = gateway.stream_chat("a", LONG_TASK, feature="test", max_tokens=900)
    await first_delta(holder)
    waiting = asyncio.create_task(gateway.complete("b", ask("Say hi."), feature="test", max_tokens=2))
    while gateway.scheduler.queued < 1:
        await asyncio.sleep(0.01)
    with pytest.raises(LLMUnavailableError, match="queue is full"):
        await gateway.complete("c", ask("Say hi."), feature="test", max_tokens=2)
    await holder.aclose()
    assert await waiting


async def test_each_request_is_a_span_with_ttft_and_speed(embedded: EmbeddedLlama) -> None:
    exporter = span_exporter()
    gateway = gateway_over(embedded)
    await gateway.complete("alice", ask("Count from 1 to 10."), feature="test.span", max_tokens=16)
    [span] = [
        s
        for s in exporter.get_finished_spans()
        if s.attributes and s.attributes.get("shadowdesk.llm.feature") == "test.span"
    ]
    attributes = dict(span.attributes or {})
    assert span.name == f"chat {embedded.name}"
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.usage.output_tokens"] == 16
    assert attributes["gen_ai.usage.input_tokens"] > 5
    assert 0 < attributes["shadowdesk.llm.ttft_ms"] < 10_000
    assert attributes["shadowdesk.llm.output_tokens_per_s"] > 1
    assert attributes["shadowdesk.llm.outcome"] == "ok"
    assert [event.name for event in span.events] == ["slot_granted", "first_token"]


async def test_no_backend_is_unavailable() -> None:
    gateway = LLMGateway(LLMSettings(backend="none"), None)
    with pytest.raises(LLMUnavailableError):
        await gateway.complete("alice", ask("hi"), feature="test")


def test_prompt_layout_keeps_the_shared_parts_first() -> None:
    context = "Window: app mousepad\n<screen>\nQuarterly report draft\n</screen>"
    summary = layout("constant system prompt", context=context, request="Task: summarise.")
    translation = layout("constant system prompt", context=context, request="Task: translate.")
    assert summary[0] == translation[0]
    assert summary[1].content.startswith(context) and translation[1].content.startswith(context)
