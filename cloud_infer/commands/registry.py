"""Which agent sessions have a stream open on this server now, and the downlink of each stream.

A session may briefly have two streams (a reconnect racing the old one): each has its own downlink and
is sent every pending command; the agent executes a command id at most once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from protos.shadowdesk.v1 import ingest_pb2 as pb

SessionKey = tuple[str, str]  # (user_id, session_id)


@dataclass(eq=False)
class Downlink:
    """The command side of one ingest stream: yields each pending command once per stream."""

    user_id: str
    session_id: str
    capabilities: tuple[str, ...]
    # Takes the session's pending commands this stream has not been sent, marking them delivered.
    _take: Callable[[Downlink], Awaitable[Sequence[pb.Command]]]
    sent: set[str] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self._wake.set()

    async def commands(self) -> AsyncIterator[pb.CloudMessage]:
        """Every pending command now, then each new one (and each cancel) as it is issued."""
        while True:
            self._wake.clear()
            for command in await self._take(self):
                yield pb.CloudMessage(command=command)
            await self._wake.wait()


class LiveSessions:
    """The registry of connected sessions on this server (in memory: a stream lives in one process)."""

    def __init__(self) -> None:
        self._streams: dict[SessionKey, set[Downlink]] = {}

    def add(self, downlink: Downlink) -> None:
        self._streams.setdefault((downlink.user_id, downlink.session_id), set()).add(downlink)

    def remove(self, downlink: Downlink) -> None:
        key = (downlink.user_id, downlink.session_id)
        streams = self._streams.get(key)
        if streams is not None:
            streams.discard(downlink)
            if not streams:
                del self._streams[key]

    def connected(self, user_id: str, session_id: str) -> bool:
        return (user_id, session_id) in self._streams

    def sessions(self, user_id: str) -> list[str]:
        """The user's sessions with a stream open here, sorted."""
        return sorted(session for user, session in self._streams if user == user_id)

    def capabilities(self, user_id: str, session_id: str) -> frozenset[str]:
        """What the session's connected agents said they support in Hello (empty when not connected)."""
        streams = self._streams.get((user_id, session_id), set())
        return frozenset(c for downlink in streams for c in downlink.capabilities)

    def wake(self, user_id: str, session_id: str) -> None:
        for downlink in self._streams.get((user_id, session_id), ()):
            downlink.wake()
