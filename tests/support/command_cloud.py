"""For the executor's and recorder's tests: a minimal real gRPC cloud that speaks the command contract
(the real cloud's outbox is not needed to test the agent), commands as a user sends them, and the results
in a spool. The fixtures that start them are in ``tests/session_agent/conftest.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from protos.shadowdesk.v1 import ingest_pb2 as pb
from protos.shadowdesk.v1 import ingest_pb2_grpc
from session_agent.spool import Spool

R = pb.CommandResult


class CommandCloud(ingest_pb2_grpc.IngestServicer):
    """An Ingest server that acks every batch, keeps every event, and delivers its outbox on every stream
    until a CommandResult for each command arrived (at-least-once, as the contract says)."""

    def __init__(self) -> None:
        self.events: dict[int, pb.Event] = {}
        self.hellos: list[pb.Hello] = []
        self.outbox: dict[str, pb.Command] = {}
        self.received_bytes = bytearray()
        self._queues: set[asyncio.Queue[pb.CloudMessage | None]] = set()

    @property
    def hwm(self) -> int:
        return max(self.events, default=0)

    def send(self, command: pb.Command, *, again: bool = False) -> None:
        """Put ``command`` in the outbox and deliver it on the live streams (``again``: even if it is
        in the outbox already, i.e. a duplicate delivery)."""
        known = command.command_id in self.outbox
        self.outbox[command.command_id] = command
        if known and not again:
            return
        for queue in self._queues:
            queue.put_nowait(pb.CloudMessage(command=command))

    def of(self, kind: str) -> list[pb.Event]:
        return [event for _, event in sorted(self.events.items()) if event.WhichOneof("kind") == kind]

    def results(self, command_id: str) -> list[pb.CommandResult]:
        return [
            e.command_result for e in self.of("command_result") if e.command_result.command_id == command_id
        ]

    def started(self, command_id: str) -> list[pb.CommandStarted]:
        return [
            e.command_started
            for e in self.of("command_started")
            if e.command_started.command_id == command_id
        ]

    async def result(self, command_id: str, timeout_s: float = 30.0) -> pb.CommandResult:
        deadline = time.monotonic() + timeout_s
        while not self.results(command_id):
            if time.monotonic() > deadline:
                raise AssertionError(f"no CommandResult for {command_id} within {timeout_s}s")
            await asyncio.sleep(0.02)
        return self.results(command_id)[0]

    async def Stream(
        self, request_iterator: AsyncIterator[pb.AgentMessage], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.CloudMessage]:
        hello = await anext(aiter(request_iterator))
        self.hellos.append(hello.hello)
        queue: asyncio.Queue[pb.CloudMessage | None] = asyncio.Queue()
        for command in self.outbox.values():
            queue.put_nowait(pb.CloudMessage(command=command))
        self._queues.add(queue)
        reader = asyncio.create_task(self._read(request_iterator, queue))
        try:
            yield pb.CloudMessage(welcome=pb.Welcome(acked_seq=self.hwm, max_batch_events=1000))
            while (message := await queue.get()) is not None:
                yield message
        finally:
            self._queues.discard(queue)
            reader.cancel()

    async def _read(
        self, request_iterator: AsyncIterator[pb.AgentMessage], queue: asyncio.Queue[pb.CloudMessage | None]
    ) -> None:
        try:
            async for message in request_iterator:
                self.received_bytes += message.SerializeToString()
                for event in message.batch.events:
                    if event.seq > self.hwm:
                        self.events[event.seq] = event
                    if event.WhichOneof("kind") == "command_result":
                        self.outbox.pop(event.command_result.command_id, None)
                queue.put_nowait(pb.CloudMessage(ack=pb.Ack(acked_seq=self.hwm)))
        finally:
            queue.put_nowait(None)


def command(command_id: str, *, deadline_s: float = 60.0, secret: str = "", **kind: Any) -> pb.Command:
    """A command from a user, due ``deadline_s`` from now (0: no deadline)."""
    deadline = time.time_ns() + int(deadline_s * 1e9) if deadline_s else 0
    return pb.Command(
        command_id=command_id,
        issuer=pb.Issuer(kind=pb.Issuer.KIND_USER, id="alice@example.com"),
        deadline_unix_nano=deadline,
        issued_unix_nano=time.time_ns(),
        secret=secret,
        **kind,
    )


def spooled(spool: Spool, kind: str) -> list[pb.Event]:
    return [event for event in spool.read_after(0, 100_000, 1 << 40) if event.WhichOneof("kind") == kind]


def result_in(spool: Spool, command_id: str) -> pb.CommandResult | None:
    found = [
        e.command_result
        for e in spooled(spool, "command_result")
        if e.command_result.command_id == command_id
    ]
    assert len(found) <= 1, f"{len(found)} results for {command_id}"
    return found[0] if found else None


async def wait_result(spool: Spool, command_id: str, timeout_s: float = 20.0) -> pb.CommandResult:
    deadline = time.monotonic() + timeout_s
    while (found := result_in(spool, command_id)) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no CommandResult for {command_id} within {timeout_s}s")
        await asyncio.sleep(0.02)
    return found
