"""Two sources of replies on one stream, written by one writer.

An ingest stream answers batches with acks and also carries the commands the cloud sends at any time.
grpc.aio's write side takes one writer, so both sources feed ``interleave``, and the stream handler
yields what it gives: a reply at a time, each source waiting while its previous reply is written.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from typing import TypeVar, cast

T = TypeVar("T")


class _Signal(enum.Enum):
    ITEM = 1
    PRIMARY_ENDED = 2
    SECONDARY_ENDED = 3
    FAILED = 4


async def _pump(
    source: AsyncIterator[T], queue: asyncio.Queue[tuple[_Signal, object]], ended: _Signal
) -> None:
    try:
        async for item in source:
            await queue.put((_Signal.ITEM, item))
    except Exception as exc:  # handed to the consumer, which raises it
        await queue.put((_Signal.FAILED, exc))
        return
    await queue.put((ended, None))


async def interleave(primary: AsyncIterator[T], secondary: AsyncIterator[T]) -> AsyncIterator[T]:
    """The items of both sources as they come; ends when ``primary`` ends, and with the first error of
    either. Closing it (the client went away) cancels both sources."""
    queue: asyncio.Queue[tuple[_Signal, object]] = asyncio.Queue(1)
    tasks = [
        asyncio.create_task(_pump(primary, queue, _Signal.PRIMARY_ENDED), name="stream-replies"),
        asyncio.create_task(_pump(secondary, queue, _Signal.SECONDARY_ENDED), name="stream-downlink"),
    ]
    try:
        while True:
            signal, value = await queue.get()
            if signal is _Signal.FAILED:
                assert isinstance(value, Exception)
                raise value
            if signal is _Signal.PRIMARY_ENDED:
                return
            if signal is _Signal.ITEM:
                yield cast(T, value)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
