"""Fixtures of the session_agent tests: a real Xvfb desktop, a real ingest server on port 0, settings."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from cloud_infer.auth import issue_token
from cloud_infer.config import ServerSettings
from cloud_infer.server import create_grpc_server, ingest_service
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.event_log import EventLog
from recall_store.local import LocalObjectStore
from session_agent.config import AgentSettings
from session_agent.sensors.base import Sensor
from shadowdesk_common.desktop import VirtualDesktop

SECRET = "session-agent-test-secret-0123456789abcdef"


def wait_until(condition: Callable[[], bool], timeout_s: float = 15.0, what: str = "condition") -> None:
    """Poll ``condition`` until true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


async def async_wait_until(
    condition: Callable[[], bool], timeout_s: float = 15.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def desktop() -> Iterator[VirtualDesktop]:
    with VirtualDesktop(width=1280, height=800) as running:
        yield running


@pytest.fixture
def ids() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return f"user-{suffix}@example.com", f"session-{suffix}"


@pytest.fixture
def make_settings(tmp_path: Path, ids: tuple[str, str]) -> Callable[..., AgentSettings]:
    """AgentSettings for this test's user/session with a valid token, fast timings and a temp spool."""
    user_id, session_id = ids

    def make(**overrides: Any) -> AgentSettings:
        values: dict[str, Any] = {
            "token": issue_token(SECRET, user_id, "ingest", session_id=session_id),
            "user_id": user_id,
            "session_id": session_id,
            "display": "",
            "sensors": set(),
            "spool_path": tmp_path / "spool.sqlite3",
            "flush_interval_s": 0.05,
            "ack_timeout_s": 5.0,
            "connect_timeout_s": 5.0,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.5,
        }
        values.update(overrides)
        return AgentSettings(**values)

    return make


@dataclass
class CloudServer:
    server: grpc.aio.Server
    port: int
    event_log: EventLog

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[CloudServer]:
    """The real cloud_infer ingest server over the embedded local store."""
    settings = ServerSettings(environment="local", token_secret=SECRET, grpc_port=0, shutdown_grace_s=1.0)
    store = LocalObjectStore(tmp_path / "store", workers=4)
    event_log = EventLog(store)
    server, port = await create_grpc_server(settings, ingest_service(settings, event_log.store))
    yield CloudServer(server, port, event_log)
    await server.stop(None)
    await store.close()


class Collected:
    """A thread-safe emit target."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[pb.Event] = []

    def __call__(self, event: pb.Event) -> None:
        with self._lock:
            self._events.append(event)

    def of(self, kind: str) -> list[pb.Event]:
        with self._lock:
            return [e for e in self._events if e.WhichOneof("kind") == kind]


@pytest.fixture
def run_sensor() -> Iterator[Callable[[Sensor], threading.Thread]]:
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(sensor: Sensor) -> threading.Thread:
        thread = threading.Thread(target=sensor.run, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    stop.set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive(), "sensor did not stop"
