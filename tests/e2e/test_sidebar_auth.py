"""How the sidebar signs in, in a real headless Chromium against the real server.

The page is opened as the Shadowdesk client opens it, with a single-use login ticket in the URL
fragment. It redeems the ticket for a token that never appears in a URL or the console, keeps it
across a reload of the tab, refreshes it, and reopens its websocket with it when the server closes the
socket at the old token's expiry. Destructive or privacy-reducing controls are off without the manage
scope (the server refuses them too), and with it each one asks first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from cloud_infer.auth import DEFAULT_KEY_ID, TokenAuthority, issue_token
from harness.processes import TOKEN_SECRET, ServerProcess, wait_until
from tests.support.cloud import focus
from tests.support.sidebar_page import (
    UI_TIMEOUT_MS,
    Sidebar,
    api_get,
    ingest,
    login_ticket,
    manage_token,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NS = 1_000_000_000
SIGNED_OUT = "Signed out: open the sidebar from the Shadowdesk client again."
READ_ONLY = re.compile("read-only")
# Where and how the page keeps this tab's sign-in (api.js, Session); the refresh tests plant one.
SESSION_KEY = "shadowdesk.session"
PLANT_SESSION = """([key, token, scopes, expiresInMs, refreshInMs]) => {
  const now = Date.now();
  sessionStorage.setItem(key, JSON.stringify({
    token, scopes, expiresAt: now + expiresInMs, refreshAt: now + refreshInMs,
  }));
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("sidebar-auth")
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(root / "store")}
    process = ServerProcess(store, root / "server.log")
    process.start()
    yield process
    process.terminate()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 380, "height": 900}, locale="en-US")
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def sidebar(context: BrowserContext, server: ServerProcess) -> Sidebar:
    return Sidebar(context.new_page(), server)


class Handshakes:
    """The websocket handshakes of one page as Chromium's network stack made them (DevTools protocol).

    Playwright shows a websocket's URL but not its handshake headers, where the token now travels.
    """

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.offered: list[str] = []  # Sec-WebSocket-Protocol of each request
        self.accepted: list[str] = []  # ... and of each answer
        session = context.new_cdp_session(page)
        session.on("Network.webSocketWillSendHandshakeRequest", self._request)
        session.on("Network.webSocketHandshakeResponseReceived", self._response)
        session.send("Network.enable")

    def _request(self, event: dict[str, Any]) -> None:
        self.offered.append(_header(event["request"]["headers"], "sec-websocket-protocol"))

    def _response(self, event: dict[str, Any]) -> None:
        self.accepted.append(_header(event["response"]["headers"], "sec-websocket-protocol"))


def _header(headers: dict[str, str], name: str) -> str:
    return next((value for key, value in headers.items() if key.lower() == name), "")


def poll(page: Page, predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    """wait_until, but waiting inside Playwright so that the page's events keep being delivered."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        page.wait_for_timeout(200)


def remember(server: ServerProcess, user: str, title: str) -> None:
    """A window the user focused a minute ago, indexed and searchable."""
    word = title.split()[0]
    ingest(server, user, f"{user}-desk", [focus(1, time.time_ns() - 60 * NS, "mousepad", title, window_id=4)])

    def found() -> object:
        return api_get(server, user, "/v1/recall/search", q=word)["hits"]

    wait_until(found, 60, f"{title!r} indexed", interval_s=1)  # searches are limited to 120 a minute


def session_url(server: ServerProcess) -> str:
    return f"{server.http_url}/v1/auth/session"


def test_signs_in_from_the_fragment_and_no_url_carries_a_credential(
    context: BrowserContext, sidebar: Sidebar, server: ServerProcess
) -> None:
    user, title = "auth-erin", "Roadmap draft - Mousepad"
    page = sidebar.page
    handshakes = Handshakes(context, page)
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.on("websocket", lambda socket: urls.append(socket.url))

    ticket = login_ticket(user)
    with page.expect_response(session_url(server)) as redeemed:
        sidebar.open_ticket(ticket)
    grant = redeemed.value.json()
    assert redeemed.value.status == 200 and grant["scopes"] == ["read", "manage"]
    token = grant["token"]
    # The ticket went in the body of the redemption, with no other credential.
    assert redeemed.value.request.post_data_json == {"ticket": ticket}
    assert "authorization" not in redeemed.value.request.headers
    expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=UI_TIMEOUT_MS)
    # The fragment left the address bar (and the history entry) at once.
    assert page.evaluate("() => location.href") == f"{server.http_url}/sidebar"

    # The socket is authenticated (the server accepted it): a moment captured now arrives over it and
    # the recent list shows it with nothing searched.
    remember(server, user, title)
    expect(sidebar.items()).to_have_count(1, timeout=UI_TIMEOUT_MS)
    sidebar.search("Roadmap")
    expect(sidebar.items().first.get_by_test_id("result-title")).to_have_text(title, timeout=UI_TIMEOUT_MS)

    # It offered the protocol and its token as subprotocols; the server chose the protocol.
    assert handshakes.offered == [f"shadowdesk.v1, bearer.{token}"]
    assert handshakes.accepted == ["shadowdesk.v1"]
    # Neither the ticket nor the token is in any URL the browser asked for, nor on the console.
    assert any("/v1/recall/search" in url for url in urls) and any("/v1/recall/live" in url for url in urls)
    assert [url for url in urls if ticket in url or token in url] == []
    assert [text for text in sidebar.console if ticket in text or token in text] == []
    assert sidebar.errors == []


def test_a_reload_keeps_the_sign_in_and_a_used_ticket_signs_nothing_in(
    context: BrowserContext, sidebar: Sidebar, server: ServerProcess
) -> None:
    page = sidebar.page
    redemptions: list[int] = []
    page.on("response", lambda r: redemptions.append(r.status) if r.url == session_url(server) else None)
    ticket = login_ticket("auth-frank")
    sidebar.open_ticket(ticket)
    expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=UI_TIMEOUT_MS)

    # A reload has no ticket any more: the tab's sign-in carries on, without a second redemption.
    page.reload()
    expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("results-intro")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("status")).to_be_hidden()
    assert redemptions == [200]

    # The same link opened again, in another tab: the ticket is spent, nothing is signed in.
    other = Sidebar(context.new_page(), server)
    with other.page.expect_response(session_url(server)) as refused:
        other.open_ticket(ticket)
    assert refused.value.status == 401
    expect(other.page.get_by_test_id("status")).to_have_text(SIGNED_OUT)
    expect(other.page.get_by_test_id("search-input")).to_be_disabled()
    expect(other.page.get_by_test_id("live-status")).to_have_text("Offline")
    assert other.page.evaluate("() => location.href") == f"{server.http_url}/sidebar"
    # Chromium reports the refused redemption on the console; nothing else went wrong.
    assert [e for e in other.errors if "401" not in e] == []

    # The first tab is not affected.
    sidebar.search("anything")
    expect(page.get_by_test_id("results-empty")).to_be_visible(timeout=UI_TIMEOUT_MS)
    assert sidebar.errors == []


def test_a_read_only_sign_in_cannot_erase_or_reduce_privacy(sidebar: Sidebar, server: ServerProcess) -> None:
    user, title = "auth-grace", "Payroll March - Mousepad"
    remember(server, user, title)
    paused = httpx.put(
        f"{server.http_url}/v1/privacy",
        json={"paused": True},
        headers={"Authorization": f"Bearer {manage_token(user)}"},
        timeout=10,
    )
    assert paused.status_code == 200, paused.text

    page = sidebar.page
    with page.expect_response(session_url(server)) as redeemed:
        sidebar.open(user, manage=False)
    assert redeemed.value.json()["scopes"] == ["read"]
    token = redeemed.value.json()["token"]

    # Reading works; forgetting the moment is off, and says why.
    item = sidebar.items().first
    expect(item.get_by_test_id("result-title")).to_have_text(title, timeout=UI_TIMEOUT_MS)
    moment_id = item.get_attribute("data-moment-id")
    assert moment_id
    item.get_by_role("button").click()
    expect(page.get_by_test_id("moment-forget")).to_be_disabled()
    expect(page.get_by_test_id("moment-forget")).to_have_attribute("title", READ_ONLY)
    page.get_by_test_id("moment-back").click()

    sidebar.tab("Privacy")
    expect(page.get_by_test_id("read-only-note")).to_contain_text("read-only")
    for control in ("erase-range", "erase-all", "privacy-retention"):
        expect(page.get_by_test_id(control)).to_be_disabled()
        expect(page.get_by_test_id(control)).to_have_attribute("title", READ_ONLY)
    pause = page.get_by_test_id("privacy-pause")
    expect(pause).to_be_checked()
    expect(pause).to_be_disabled()  # resuming capture needs manage
    expect(page.get_by_test_id("export")).to_be_enabled()

    # Capturing less needs only read, and no confirmation: a new exclusion is saved.
    page.get_by_test_id("privacy-apps").fill("keepassxc")
    page.get_by_test_id("privacy-save").click()
    expect(page.get_by_test_id("status")).to_have_text("Privacy settings saved.", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("confirm-dialog")).to_be_hidden()
    # Dropping it again is refused by the page itself, which says why.
    page.get_by_test_id("privacy-apps").fill("")
    page.get_by_test_id("privacy-save").click()
    expect(page.get_by_test_id("status")).to_contain_text("read-only")
    expect(page.get_by_test_id("privacy-apps")).to_have_value("keepassxc")

    # The page's own token, used directly, is refused by the server for each of these (403).
    settings = api_get(server, user, "/v1/privacy")
    assert (
        settings["paused"] and settings["excluded_apps"] == ["keepassxc"] and settings["retention_days"] == 90
    )
    attempts: list[tuple[str, str, Any]] = [
        ("POST", "/v1/recall/erase", {"everything": True}),
        ("DELETE", f"/v1/recall/moments/{moment_id}", None),
        ("PUT", "/v1/privacy", {**settings, "paused": False}),
        ("PUT", "/v1/privacy", {**settings, "excluded_apps": []}),
        ("PUT", "/v1/privacy", {**settings, "retention_days": 1}),
    ]
    auth = {"Authorization": f"Bearer {token}"}
    for method, path, body in attempts:
        reply = httpx.request(method, server.http_url + path, json=body, headers=auth, timeout=10)
        assert reply.status_code == 403 and reply.json()["code"] == "permission_denied", (path, reply.text)

    # Nothing was lost or given up.
    hits = api_get(server, user, "/v1/recall/search", q="Payroll")["hits"]
    assert [hit["moment_id"] for hit in hits] == [moment_id]
    assert api_get(server, user, "/v1/privacy") == settings
    assert sidebar.errors == []


def test_unpausing_and_a_retention_change_ask_first(sidebar: Sidebar, server: ServerProcess) -> None:
    user = "auth-heidi"
    page = sidebar.page
    sidebar.open(user)
    sidebar.tab("Privacy")
    pause = page.get_by_test_id("privacy-pause")
    dialog = page.get_by_test_id("confirm-dialog")
    expect(page.get_by_test_id("read-only-note")).to_be_hidden()

    # Pausing captures less: no question.
    pause.click()
    expect(page.get_by_test_id("paused-badge")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(dialog).to_be_hidden()
    wait_until(lambda: api_get(server, user, "/v1/privacy")["paused"] is True, 10, "paused stored")

    # Resuming asks; cancelling leaves the pause in place, on the page and on the server.
    pause.click()
    expect(dialog).to_be_visible()
    expect(page.get_by_test_id("confirm-message")).to_contain_text("Capture resumes")
    expect(page.get_by_test_id("confirm-ok")).to_have_text("Resume capture")
    page.get_by_test_id("confirm-cancel").click()
    expect(dialog).to_be_hidden()
    expect(pause).to_be_checked()
    expect(page.get_by_test_id("paused-badge")).to_be_visible()
    assert api_get(server, user, "/v1/privacy")["paused"] is True

    # A shorter retention deletes history: asked too, and Escape cancels it.
    page.get_by_test_id("privacy-retention").fill("7")
    page.get_by_test_id("privacy-save").click()
    expect(page.get_by_test_id("confirm-message")).to_contain_text("deleted for good")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("privacy-retention")).to_have_value("90")
    assert api_get(server, user, "/v1/privacy")["retention_days"] == 90

    # Confirmed, capture resumes.
    pause.click()
    page.get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("paused-badge")).to_be_hidden(timeout=UI_TIMEOUT_MS)
    wait_until(lambda: api_get(server, user, "/v1/privacy")["paused"] is False, 10, "capture resumed")
    assert sidebar.errors == []


def test_the_token_is_refreshed_and_the_socket_reopens_with_it(
    context: BrowserContext, sidebar: Sidebar, server: ServerProcess
) -> None:
    user = "auth-ivan"
    page = sidebar.page
    sidebar.open(user)
    handshakes = Handshakes(context, page)
    # This tab's sign-in, now with a token that lives 8 s and is due for a refresh after 5 s.
    short = issue_token(TOKEN_SECRET, user, ["read", "manage"], ttl_s=8)
    page.evaluate(PLANT_SESSION, [SESSION_KEY, short, ["read", "manage"], 8_000, 5_000])
    with page.expect_response(f"{server.http_url}/v1/auth/refresh", timeout=20_000) as refreshed:
        page.reload()
        expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=UI_TIMEOUT_MS)
    assert refreshed.value.status == 200
    assert refreshed.value.request.headers["authorization"] == f"Bearer {short}"
    fresh = refreshed.value.json()["token"]
    assert refreshed.value.json()["scopes"] == ["read", "manage"]

    # At the short token's expiry the server closes the socket (4001); it opens again at once, with
    # the refreshed token, and live moments keep arriving over it.
    poll(page, lambda: len(handshakes.offered) >= 2, 15, "the socket to reopen")
    assert handshakes.offered[:2] == [f"shadowdesk.v1, bearer.{short}", f"shadowdesk.v1, bearer.{fresh}"]
    expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=UI_TIMEOUT_MS)
    remember(server, user, "Standup notes - Mousepad")
    expect(sidebar.items()).to_have_count(1, timeout=UI_TIMEOUT_MS)
    assert sidebar.errors == []


def test_a_refused_refresh_signs_the_page_out(sidebar: Sidebar, server: ServerProcess) -> None:
    user = "auth-judy"
    remember(server, user, "Salary review - Mousepad")
    page = sidebar.page
    sidebar.open(user)
    # A sign-in older than the server's limit on sessions (12 h) may not be refreshed any more.
    authority = TokenAuthority(DEFAULT_KEY_ID, {DEFAULT_KEY_ID: TOKEN_SECRET})
    stale = authority.issue(user, ["read"], ttl_s=600, auth_time=int(time.time()) - 13 * 3600)
    page.evaluate(PLANT_SESSION, [SESSION_KEY, stale, ["read"], 600_000, 4_000])
    page.reload()
    expect(sidebar.items()).to_have_count(1, timeout=UI_TIMEOUT_MS)

    # The refresh is refused: the page says so, shows no history and turns every control off.
    expect(page.get_by_test_id("status")).to_have_text(SIGNED_OUT, timeout=UI_TIMEOUT_MS)
    expect(sidebar.items()).to_have_count(0)
    expect(page.get_by_test_id("search-input")).to_be_disabled()
    expect(page.get_by_test_id("live-status")).to_have_text("Offline", timeout=UI_TIMEOUT_MS)
    # The sign-in is gone from the tab: a reload stays signed out.
    page.reload()
    expect(page.get_by_test_id("status")).to_have_text(SIGNED_OUT, timeout=UI_TIMEOUT_MS)
    assert page.evaluate("key => sessionStorage.getItem(key)", SESSION_KEY) is None
    assert [e for e in sidebar.errors if "401" not in e] == []
