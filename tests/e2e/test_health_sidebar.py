"""The sidebar's desktop-health notice in a real headless Chromium, against the real server.

A desktop (a test agent on a real gRPC stream, on its own loop) reports memory pressure with chromium
holding most of it. Its user's sidebar shows the notice with the fix "Close chromium"; the user applies
it, the desktop receives the kill command for that process and reports it done, and the sidebar says
so. Another user's sidebar shows nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, expect

from harness.processes import TOKEN_SECRET, ServerProcess
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.cloud import now_ns
from tests.support.commands_agent import TestAgent
from tests.support.sidebar_page import UI_TIMEOUT_MS, Sidebar

pytestmark = [pytest.mark.e2e]

GIB = 1024**3
T = TypeVar("T")


class AgentThread:
    """A test agent on its own event loop, driven from this synchronous test."""

    def __init__(self, server: ServerProcess, user: str, session: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="health-desk", daemon=True)
        self._thread.start()
        self.agent = TestAgent(server.grpc_address, user, session, token_secret=TOKEN_SECRET)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        try:
            self.call(self.agent.close(), timeout_s=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)


async def memory_pressure(agent: TestAgent, seconds: int) -> None:
    hog = pb.ProcessUsage(pid=4321, name="chromium", app_id="chromium", cpu_percent=12.0, rss_bytes=14 * GIB)
    start = now_ns() - 120 * 1_000_000_000
    for i in range(seconds):
        agent.seq += 1
        sample = pb.SystemMetrics(
            cpu_percent=20.0,
            memory_used_bytes=int(15.5 * GIB),
            memory_total_bytes=16 * GIB,
            disk_used_percent=40.0,
            top_memory=[hog],
        )
        event = pb.Event(seq=agent.seq, time_unix_nano=start + i * 1_000_000_000, metrics=sample)
        await agent.send([event])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root: Path = tmp_path_factory.mktemp("health")
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(root / "store")}
    process = ServerProcess(store, root / "server.log", llm_backend="none")
    process.start()
    yield process
    process.terminate()


def test_the_user_closes_the_app_that_holds_the_memory_from_the_sidebar(
    browser: Browser, server: ServerProcess
) -> None:
    desk = AgentThread(server, "hana", "hana-desktop")
    context = browser.new_context(viewport={"width": 380, "height": 900}, locale="en-US")
    try:
        desk.call(desk.agent.connect())
        desk.call(memory_pressure(desk.agent, 14))
        sidebar = Sidebar(context.new_page(), server)
        sidebar.open("hana")
        notice = sidebar.page.get_by_test_id("health-notice")
        expect(notice).to_have_count(1, timeout=UI_TIMEOUT_MS)
        expect(notice).to_contain_text("Memory pressure")
        fix = notice.get_by_test_id("health-fix")
        expect(fix).to_have_text("Close chromium (pid 4321), which uses 88 % of memory")

        kill = desk.submit(desk.agent.next_command(timeout_s=30))
        fix.click()
        sidebar.page.get_by_role("button", name="Fix it").click()
        command = kill.result(30)
        assert command.remediation.kill_process.pid == 4321 and command.issuer.id == "hana"
        desk.call(desk.agent.result(command.command_id, observed={"ended": "4321"}))
        expect(sidebar.page.get_by_test_id("status")).to_contain_text("Done", timeout=UI_TIMEOUT_MS)
        assert not sidebar.errors

        other = Sidebar(context.new_page(), server)
        other.open("ivan")
        other.page.wait_for_timeout(1000)  # one poll has answered
        expect(other.page.get_by_test_id("health-notice")).to_have_count(0)
    finally:
        context.close()
        desk.close()
