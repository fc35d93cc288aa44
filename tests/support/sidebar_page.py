"""The sidebar as the browser tests drive it: real gRPC ingest into a real server, and one page."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from cloud_infer.auth import issue_token
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.cloud_infer.helpers import AgentStream
from tests.support.processes import TOKEN_SECRET, ServerProcess

UI_TIMEOUT_MS = 20_000


def ingest(server: ServerProcess, user: str, session: str, events: list[pb.Event]) -> None:
    """Send ``events`` as one agent batch; runs in its own thread, away from Playwright's event loop."""

    async def send() -> None:
        token = issue_token(TOKEN_SECRET, user, "ingest", session_id=session, ttl_s=600)
        agent = AgentStream(server.grpc_address, token)
        try:
            await agent.open(user, session)
            assert await agent.ack(events) == events[-1].seq
        finally:
            await agent.close()

    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(send())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "ingest did not finish within 30 s"
    if failure:
        raise failure[0]


def read_token(user: str) -> str:
    return issue_token(TOKEN_SECRET, user, "read", ttl_s=600)


def api_get(server: ServerProcess, user: str, path: str, **params: str) -> Any:
    reply = httpx.get(
        server.http_url + path,
        params=params,
        headers={"Authorization": f"Bearer {read_token(user)}"},
        # The first search loads the embedding model.
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


class Sidebar:
    """One sidebar tab, recording every console error and uncaught exception of the page."""

    def __init__(self, page: Page, server: ServerProcess) -> None:
        self.page = page
        self.server = server
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, user: str) -> None:
        # From about:blank, so that going to the same page with a new fragment loads it afresh.
        self.page.goto("about:blank")
        self.page.goto(f"{self.server.http_url}/sidebar#token={read_token(user)}")
        expect(self.page.get_by_test_id("live-status")).to_have_text("Live", timeout=UI_TIMEOUT_MS)

    def search(self, query: str) -> None:
        self.page.get_by_role("tab", name="Search").click()
        self.page.get_by_test_id("search-input").fill(query)
        self.page.get_by_test_id("search-input").press("Enter")

    def items(self) -> Any:
        return self.page.get_by_test_id("result-item")

    def tab(self, name: str) -> None:
        self.page.get_by_role("tab", name=name).click()
