"""Fixtures of the session_agent tests: a real Xvfb desktop, a real ingest server on port 0, settings; for
the executor's and recorder's tests a real spool, a minimal command cloud and the recorder's desk."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from cloud_infer.auth import issue_token
from cloud_infer.config import ServerSettings
from cloud_infer.server import create_grpc_server, ingest_service
from harness.chromium import chromium_argv
from harness.dbus import SessionBus
from protos.shadowdesk.v1 import ingest_pb2_grpc
from recall_store.event_log import EventLog
from recall_store.local import LocalObjectStore
from session_agent.config import AgentSettings
from session_agent.sensors.base import Sensor
from session_agent.spool import Spool
from shadowdesk_common.desktop import VirtualDesktop
from tests.support.agent_cloud import SECRET, CloudServer
from tests.support.command_cloud import CommandCloud
from tests.support.recorder_desk import COPIED_LINE, FORM, Desk


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


@pytest.fixture
async def command_cloud() -> AsyncIterator[tuple[CommandCloud, str]]:
    """A CommandCloud on a real grpc.aio server on 127.0.0.1, port 0; yields it and its target."""
    cloud = CommandCloud()
    server = grpc.aio.server()
    ingest_pb2_grpc.add_IngestServicer_to_server(cloud, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield cloud, f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.fixture
def open_spool(tmp_path: Any) -> Iterator[Callable[[], Spool]]:
    spools: list[Spool] = []

    def open_() -> Spool:
        spools.append(Spool(tmp_path / "spool.sqlite3", "session-1", 1024 * 1024))
        return spools[-1]

    yield open_
    for spool in spools:
        spool.close()


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    home = tmp_path_factory.mktemp("recorder-desk")
    with VirtualDesktop(width=1280, height=800) as desktop, SessionBus(desktop.env) as bus:
        document = home / "invoices.txt"
        document.write_text(f"{COPIED_LINE}\nsecond line\n", encoding="utf-8")
        desktop.launch(["mousepad", str(document)], env={**bus.app_env, "XDG_CONFIG_HOME": str(home)})
        mousepad = desktop.wait_for_window(f"{document} - Mousepad")
        page = home / "claim.html"
        page.write_text(FORM, encoding="utf-8")
        argv = chromium_argv(page.as_uri(), home / "profile", "--force-renderer-accessibility")
        desktop.launch(argv, env=bus.app_env)
        chromium = desktop.wait_for_window("Claim form - Chromium")
        yield Desk(desktop, bus, mousepad, chromium, home)
