"""The sidebar as the browser tests drive it: real gRPC ingest into a real server, and one page.

A page signs in as the Shadowdesk client makes it: opened at ``/sidebar#login=<ticket>`` with a
single-use login ticket minted with the server's secret, which the page redeems for its own token.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
from playwright.sync_api import ConsoleMessage, Page, expect

from cloud_infer.auth import Scope, issue_token
from harness.processes import TOKEN_SECRET, ServerProcess
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.cloud import AgentStream

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


def manage_token(user: str) -> str:
    """A token that may also erase and reduce privacy (read + manage)."""
    return issue_token(TOKEN_SECRET, user, ["read", "manage"], ttl_s=600)


def login_ticket(user: str, *, manage: bool = True) -> str:
    """A single-use sidebar login ticket, as the server mints it (``shadowdesk login``)."""
    grants: list[Scope] = ["read", "manage"] if manage else ["read"]
    return issue_token(TOKEN_SECRET, user, "login", grants=grants)


def sidebar_url(server: ServerProcess, ticket: str) -> str:
    return f"{server.http_url}/sidebar#login={ticket}"


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
    """One sidebar tab, recording its console (errors apart) and uncaught exceptions."""

    def __init__(self, page: Page, server: ServerProcess) -> None:
        self.page = page
        self.server = server
        self.errors: list[str] = []
        self.console: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _on_console(self, message: ConsoleMessage) -> None:
        self.console.append(message.text)
        if message.type == "error":
            self.errors.append(message.text)

    def open(self, user: str, *, manage: bool = True) -> None:
        """Sign in as ``user`` with a fresh login ticket; ``manage=False`` is a read-only sign-in."""
        self.open_ticket(login_ticket(user, manage=manage))
        expect(self.page.get_by_test_id("live-status")).to_have_text("Live", timeout=UI_TIMEOUT_MS)

    def open_ticket(self, ticket: str) -> None:
        """Open the sidebar's sign-in link for ``ticket``, without waiting for anything."""
        # From about:blank, so that going to the same page with a new fragment loads it afresh.
        self.page.goto("about:blank")
        self.page.goto(sidebar_url(self.server, ticket))

    def search(self, query: str) -> None:
        self.page.get_by_role("tab", name="Search").click()
        self.page.get_by_test_id("search-input").fill(query)
        self.page.get_by_test_id("search-input").press("Enter")

    def items(self) -> Any:
        return self.page.get_by_test_id("result-item")

    def tab(self, name: str) -> None:
        self.page.get_by_role("tab", name=name).click()
