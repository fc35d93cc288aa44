"""Requests to a chat backend as the LLM tests make them, and their deltas collected."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

from cloud_infer.llm.backend import ChatBackend, ChatMessage, GenerationRequest, Usage


def ask(text: str) -> list[ChatMessage]:
    return [ChatMessage("user", text)]


def request(
    messages: list[ChatMessage],
    max_tokens: int = 32,
    json_schema: dict[str, object] | None = None,
    affinity_key: str = "",
) -> GenerationRequest:
    return GenerationRequest(
        uuid.uuid4().hex, tuple(messages), max_tokens, json_schema=json_schema, affinity_key=affinity_key
    )


def deadline_in(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def collect(
    backend: ChatBackend,
    messages: list[ChatMessage],
    max_tokens: int = 32,
    deadline_s: float = 30.0,
    json_schema: dict[str, object] | None = None,
    affinity_key: str = "",
) -> tuple[list[str], Usage]:
    """Every delta of one request, and its usage (which must come exactly once, last)."""
    deltas: list[str] = []
    usages: list[Usage] = []
    generation = backend.generate(
        request(messages, max_tokens, json_schema, affinity_key), deadline_in(deadline_s)
    )
    async for item in generation:
        assert not usages, "nothing may follow the usage"
        if isinstance(item, Usage):
            usages.append(item)
        else:
            deltas.append(item)
    assert len(usages) == 1
    return deltas, usages[0]


async def texts(stream: AsyncIterator[str | Usage]) -> AsyncIterator[str]:
    async with contextlib.aclosing(stream):  # type: ignore[type-var]  # backends return generators
        async for item in stream:
            if isinstance(item, str):
                yield item


async def first_delta_after(backend: ChatBackend, messages: list[ChatMessage]) -> tuple[str, float]:
    """The first delta of a fresh request and the seconds it took to arrive."""
    started = time.monotonic()
    async with contextlib.aclosing(
        texts(backend.generate(request(messages, 4), deadline_in(20.0)))
    ) as stream:
        delta = await anext(stream)
    return delta, time.monotonic() - started


async def take(stream: AsyncIterator[str], count: int) -> list[str]:
    """The first ``count`` deltas; the stream is left open, mid-generation."""
    return [await anext(stream) for _ in range(count)]


async def consume_forever(stream: AsyncIterator[str | Usage], started: asyncio.Event) -> None:
    async for _ in stream:
        started.set()


INVOICE_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"vendor": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["vendor", "amount"],
}
