"""The real cloud_infer ingest server a session agent's test talks to (the ``cloud`` fixture), and what it
logged."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

from recall_store.event_log import EventLog, LoggedEvent

SECRET = "session-agent-test-secret-0123456789abcdef"


@dataclass
class CloudServer:
    server: grpc.aio.Server
    port: int
    event_log: EventLog

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


async def logged(cloud: CloudServer, user_id: str) -> list[LoggedEvent]:
    return await cloud.event_log.read(user_id, 0, time.time_ns() + 10**9)
