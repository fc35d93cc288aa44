"""A test agent for the downlink: a real grpc.aio Ingest stream that reads the commands the cloud sends
and reports on them as CommandStarted/CommandResult events, as the session agent's executor does."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from cloud_infer.auth import issue_token
from cloud_infer.commands import SessionRef
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.naming import SYSTEM_SPACE
from recall_store.store import ObjectStore
from tests.support.cloud import SECRET, AgentStream, batch, now_ns

READ_TIMEOUT_S = 10.0


@dataclass
class TestAgent:
    """An agent's stream as the test drives it: reads commands, reports results as events."""

    __test__ = False
    target: str
    user: str
    session: str
    token_secret: str = SECRET
    commands: list[pb.Command] = field(default_factory=list)
    seq: int = 0
    _stream: AgentStream | None = None

    @property
    def ref(self) -> SessionRef:
        return SessionRef(self.user, self.session)

    async def connect(self) -> pb.Welcome:
        self._stream = AgentStream(
            self.target, issue_token(self.token_secret, self.user, "ingest", session_id=self.session)
        )
        welcome = await self._stream.open(self.user, self.session)
        self.seq = max(self.seq, welcome.acked_seq)
        return welcome

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.close()
            self._stream = None

    async def _read(self, timeout_s: float) -> pb.CloudMessage:
        assert self._stream is not None
        reply = await asyncio.wait_for(self._stream.call.read(), timeout_s)
        assert isinstance(reply, pb.CloudMessage), f"the stream ended: {reply}"
        if reply.HasField("command"):
            self.commands.append(reply.command)
        return reply

    async def next_command(self, timeout_s: float = READ_TIMEOUT_S) -> pb.Command:
        """The next command the cloud sends (acks in between are skipped)."""
        while True:
            reply = await self._read(timeout_s)
            if reply.HasField("command"):
                return reply.command

    async def no_command_within(self, seconds: float) -> None:
        with pytest.raises(TimeoutError):
            command = await self.next_command(timeout_s=seconds)
            raise AssertionError(f"unexpected command {command.command_id}")

    async def send(self, events: Sequence[pb.Event]) -> int:
        """Send a batch and return its ack; commands arriving meanwhile are kept in ``commands``."""
        assert self._stream is not None
        await self._stream.call.write(batch(events))
        while True:
            reply = await self._read(READ_TIMEOUT_S)
            if reply.HasField("ack"):
                return reply.ack.acked_seq

    def event(self, **kind: object) -> pb.Event:
        self.seq += 1
        return pb.Event(seq=self.seq, time_unix_nano=now_ns(), **kind)  # type: ignore[arg-type]

    async def started(self, command_id: str) -> int:
        return await self.send([self.event(command_started=pb.CommandStarted(command_id=command_id))])

    async def result(
        self,
        command_id: str,
        status: pb.CommandResult.Status.ValueType = pb.CommandResult.STATUS_SUCCEEDED,
        observed: dict[str, str] | None = None,
        error: str = "",
    ) -> int:
        t = now_ns()
        result = pb.CommandResult(
            command_id=command_id,
            status=status,
            received_unix_nano=t - 3_000_000,
            started_unix_nano=t - 2_000_000,
            finished_unix_nano=t,
            observed=observed or {},
            error=error,
        )
        return await self.send([self.event(command_result=result)])


async def every_object(store: ObjectStore, *users: str) -> dict[str, bytes]:
    """The bytes of every object in the users' spaces and the system space, by ``user:key``."""
    found = {}
    for space in (*users, SYSTEM_SPACE):
        for key in await store.list_keys(space):
            found[f"{space}:{key}"] = await store.get(space, key)
    return found
