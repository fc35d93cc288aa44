"""The thin client end to end: a real desktop in a real browser tab through the cloud's relay.

Xvfb with openbox and mousepad, x11vnc on a unix socket only (``shadowdesk_common.vnc``, as the demo
starts it), the real server with that socket registered as alice's ``desk-1`` desktop, the real agent
on the desktop (typing and the clipboard go through its commands), and headless Chromium on
``/desk#login=<ticket>``. Keys typed on the page's canvas reach mousepad over RFB; the type box carries
Chinese that the VNC keymap could not; the clipboard crosses both ways with Chinese; the sidebar works
beside the desktop on a phone, a tablet and a 1080p screen; the socket reopens at the token's expiry.
The security tests talk to the relay directly: no token, another user's session, an unknown session,
a read-only token and a foreign Origin are all refused, and x11vnc has no TCP socket at all.

Screenshots for the docs: ``SHADOWDESK_DESK_SCREENSHOTS=docs/images .venv/bin/pytest tests/e2e/test_desk.py
-k sizes`` writes desk-phone.png, desk-tablet.png (the sidebar's drawer open) and desk-1080p.png there.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import websockets
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, expect
from websockets.sync.client import connect

from cloud_infer.auth import issue_token
from harness.dbus import SessionBus
from harness.processes import TOKEN_SECRET, ServerProcess, ShadowdeskProcess, desktop_agent, wait_until
from shadowdesk_common.desktop import VirtualDesktop
from shadowdesk_common.vnc import VncServer
from tests.support.sidebar_page import UI_TIMEOUT_MS, login_ticket, manage_token, read_token

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USER, OTHER, SESSION = "desk-alice", "desk-bob", "desk-1"
PENDING = ("queued", "delivered", "running")
EDITOR = {"window": {"app_id": "mousepad"}, "role": "text"}
SESSION_KEY = "shadowdesk.session"
PLANT_SESSION = """([key, token, scopes, expiresInMs, refreshInMs]) => {
  const now = Date.now();
  sessionStorage.setItem(key, JSON.stringify({
    token, scopes, expiresAt: now + expiresInMs, refreshAt: now + refreshInMs,
  }));
}"""
SIZES = {"phone": (390, 844), "tablet": (820, 1180), "1080p": (1920, 1080)}


@dataclass
class Desk:
    desktop: VirtualDesktop
    vnc: VncServer
    server: ServerProcess
    agent: ShadowdeskProcess
    editor_window: int

    def command(self, step: dict[str, Any]) -> dict[str, Any]:
        """Run one workflow step on the desktop through the commands API; its finished record."""
        headers = {"Authorization": f"Bearer {manage_token(USER)}"}
        base = f"{self.server.http_url}/v1/sessions/{SESSION}/commands"
        record: dict[str, Any] = httpx.post(base, json={"workflow_step": step}, headers=headers).json()
        deadline = time.monotonic() + 30
        while record["status"] in PENDING and time.monotonic() < deadline:
            time.sleep(0.2)
            record = httpx.get(f"{base}/{record['command_id']}", headers=headers).json()
        assert record["status"] == "succeeded", record
        return record

    def editor_text(self) -> str:
        """What mousepad holds, read through AT-SPI by the agent."""
        return str(self.command({"read_element": {"element": EDITOR}})["observed"]["value"])

    def clear_editor(self) -> None:
        self.desktop.activate(self.editor_window)
        self.desktop.xdotool("key", "--clearmodifiers", "ctrl+a", "Delete")
        wait_until(lambda: self.editor_text() == "", 15, "an empty editor")

    def clipboard(self) -> str:
        found = subprocess.run(
            ["xclip", "-o", "-selection", "clipboard"], env=self.desktop.env, capture_output=True, timeout=10
        )
        return found.stdout.decode()


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    home = tmp_path_factory.mktemp("desk")
    with VirtualDesktop(width=1280, height=800) as desktop, SessionBus(desktop.env) as bus:
        note = home / "note.txt"
        note.write_text("", encoding="utf-8")
        desktop.launch(["mousepad", str(note)], env={**bus.app_env, "XDG_CONFIG_HOME": str(home / "config")})
        window = desktop.wait_for_window(f"{note} - Mousepad")
        with VncServer(desktop.display, log_path=home / "x11vnc.log") as vnc:
            store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(home / "store")}
            server = ServerProcess(
                store,
                home / "server.log",
                recall_enabled="false",
                desktop_endpoints=json.dumps({f"{USER}/{SESSION}": vnc.endpoint}),
            )
            server.start()
            try:
                agent = desktop_agent(
                    desktop.display, bus.app_env, server, USER, SESSION, home, sensors="system_metrics"
                )
                try:
                    sessions = f"{server.http_url}/v1/sessions"
                    headers = {"Authorization": f"Bearer {read_token(USER)}"}
                    known = lambda: httpx.get(sessions, headers=headers).json()["sessions"]  # noqa: E731
                    wait_until(known, 30, "the agent's session")
                    yield Desk(desktop, vnc, server, agent, window)
                finally:
                    agent.terminate()
            finally:
                server.terminate()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="en-US")
    try:
        yield context
    finally:
        context.close()


def open_desk(page: Page, desk: Desk, user: str = USER) -> None:
    page.goto(f"{desk.server.http_url}/desk#login={login_ticket(user)}")
    expect(page.get_by_test_id("desk-status")).to_have_text("Connected", timeout=UI_TIMEOUT_MS)


def canvas_shot(page: Page) -> bytes:
    return page.locator("#screen canvas").screenshot()


def test_the_desktop_renders_and_takes_keys_typed_on_the_page(context: BrowserContext, desk: Desk) -> None:
    desk.clear_editor()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.on("websocket", lambda socket: urls.append(socket.url))
    open_desk(page, desk)
    canvas = page.locator("#screen canvas")
    expect(canvas).to_be_visible()
    size = canvas.evaluate("c => [c.width, c.height]")
    assert size == [1280, 800]  # the desktop's own size, scaled into the page
    before = canvas_shot(page)

    desk.desktop.activate(desk.editor_window)
    canvas.focus()
    page.keyboard.type("typed through the relay", delay=20)
    wait_until(lambda: desk.editor_text() == "typed through the relay", 20, "the text in mousepad")
    page.wait_for_timeout(500)  # the next framebuffer update
    assert canvas_shot(page) != before

    # Nothing the page asked for carries the token or the ticket; the fragment is gone.
    token = page.evaluate(f"JSON.parse(sessionStorage.getItem('{SESSION_KEY}')).token")
    assert token and not any(token in url or "login=" in url or "bearer" in url for url in urls[1:])
    assert "#" not in page.url
    assert token not in desk.server.log()
    assert not errors, errors


def test_chinese_from_the_type_box_arrives_in_the_desktop(context: BrowserContext, desk: Desk) -> None:
    desk.clear_editor()
    page = context.new_page()
    open_desk(page, desk)
    desk.desktop.activate(desk.editor_window)
    text = "你好，世界！周报草稿 Shadowdesk 桌面测试：报销单、会议纪要"  # noqa: RUF001 (Chinese punctuation)
    page.get_by_test_id("type-input").fill(text)
    page.get_by_role("button", name="Type", exact=True).click()
    expect(page.get_by_test_id("tool-status")).to_have_text("Typed.", timeout=UI_TIMEOUT_MS)
    assert desk.editor_text() == text
    expect(page.get_by_test_id("type-input")).to_have_value("")


def test_the_clipboard_crosses_both_ways_with_chinese(context: BrowserContext, desk: Desk) -> None:
    desk.clear_editor()
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    open_desk(page, desk)
    desk.desktop.activate(desk.editor_window)
    copied = "会议纪要：下周一 10:00 评审"
    desk.command({"type_text": {"text": copied}})
    # Copied in the desktop with the page's own keys ...
    page.locator("#screen canvas").focus()
    page.keyboard.press("Control+a")
    page.keyboard.press("Control+c")
    wait_until(lambda: desk.clipboard() == copied, 10, "the desktop's clipboard")
    # ... comes to the page,
    page.get_by_text("Clipboard", exact=True).click()
    page.get_by_test_id("clip-from").click()
    expect(page.get_by_test_id("clip-text")).to_have_value(copied, timeout=UI_TIMEOUT_MS)
    assert page.evaluate("navigator.clipboard.readText()") == copied

    # and text from the page goes to the desktop's clipboard, where the user pastes it.
    pasted = "剪贴板来自浏览器 ✓ from the page"
    page.get_by_test_id("clip-text").fill(pasted)
    page.get_by_test_id("clip-to").click()
    expect(page.get_by_test_id("tool-status")).to_contain_text("clipboard is set", timeout=UI_TIMEOUT_MS)
    assert desk.clipboard() == pasted
    page.locator("#screen canvas").focus()
    page.keyboard.press("Control+a")
    page.keyboard.press("Control+v")
    wait_until(lambda: desk.editor_text() == pasted, 15, "the pasted text in mousepad")


@pytest.mark.parametrize("size", list(SIZES))
def test_the_sidebar_works_beside_the_desktop_at_three_sizes(browser: Browser, desk: Desk, size: str) -> None:
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    try:
        page = context.new_page()
        open_desk(page, desk)
        toggle = page.get_by_test_id("sidebar-toggle")
        panel = page.get_by_test_id("sidebar-panel")
        frame = page.frame_locator("#sidebar-frame")
        if width < 900:
            expect(toggle).to_be_visible()
            expect(toggle).to_have_attribute("aria-expanded", "false")
            expect(panel).to_be_hidden()
            toggle.click()
            expect(toggle).to_have_attribute("aria-expanded", "true")
        else:
            expect(toggle).to_be_hidden()
        expect(panel).to_be_visible()
        # Signed in from the page's own sign-in, and working: the Privacy tab loads the user's settings.
        frame.get_by_role("tab", name="Privacy").click()
        expect(frame.locator("#panel-privacy")).to_be_visible(timeout=UI_TIMEOUT_MS)
        expect(frame.get_by_test_id("status")).not_to_contain_text("Signed out")
        box = page.locator("#screen canvas").bounding_box()
        assert box is not None and box["width"] > 0.5 * width * (1 if width < 900 else 0.6)
        if folder := os.environ.get("SHADOWDESK_DESK_SCREENSHOTS"):
            page.wait_for_timeout(500)
            page.screenshot(path=str(Path(folder) / f"desk-{size}.png"))  # the drawer open on narrow screens
        if width < 900:
            page.keyboard.press("Escape")
            expect(toggle).to_have_attribute("aria-expanded", "false")
            expect(panel).to_be_hidden()
            expect(toggle).to_be_focused()
    finally:
        context.close()


def serious_axe_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page (the sidebar's frame has its own test)."""
    results = Axe().run(page)
    assert results.response["passes"], "axe checked nothing"  # it ran, under the page's CSP
    return [
        f"{v['id']} ({v['impact']}) {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_the_language_switches_and_stays(context: BrowserContext, desk: Desk) -> None:
    page = context.new_page()
    open_desk(page, desk)
    found = serious_axe_violations(page)
    page.get_by_test_id("lang-switch").click()
    expect(page.get_by_test_id("desk-status")).to_have_text("已连接")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("button", name="输入", exact=True)).to_be_visible()
    found += serious_axe_violations(page)
    assert not found, found
    assert page.evaluate("localStorage.getItem('shadowdesk.lang')") == "zh"
    page.reload()  # the sign-in lives in this tab's sessionStorage; the language in localStorage
    expect(page.get_by_test_id("desk-status")).to_have_text("已连接", timeout=UI_TIMEOUT_MS)
    page.get_by_test_id("lang-switch").click()
    expect(page.get_by_test_id("desk-status")).to_have_text("Connected")


def test_the_socket_reopens_with_the_refreshed_token_at_expiry(context: BrowserContext, desk: Desk) -> None:
    page = context.new_page()
    page.goto(f"{desk.server.http_url}/health")
    short = issue_token(TOKEN_SECRET, USER, ["read", "manage"], ttl_s=6)
    page.evaluate(PLANT_SESSION, [SESSION_KEY, short, ["read", "manage"], 6_000, 2_000])
    opened: list[str] = []
    closed: list[float] = []

    def on_socket(socket: Any) -> None:
        if socket.url.endswith("/rfb"):
            opened.append(socket.url)
            socket.on("close", lambda _: closed.append(time.monotonic()))

    page.on("websocket", on_socket)
    page.goto(f"{desk.server.http_url}/desk")
    expect(page.get_by_test_id("desk-status")).to_have_text("Connected", timeout=UI_TIMEOUT_MS)
    deadline = time.monotonic() + 20
    while not (closed and len(opened) >= 2) and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert closed and len(opened) >= 2, (opened, closed)
    expect(page.get_by_test_id("desk-status")).to_have_text("Connected", timeout=UI_TIMEOUT_MS)
    assert page.evaluate(f"JSON.parse(sessionStorage.getItem('{SESSION_KEY}')).token") != short


# --- the relay's doors, without a browser ------------------------------------------------------------


def relay_url(desk: Desk, session: str = SESSION) -> str:
    return desk.server.http_url.replace("http://", "ws://") + f"/v1/desktop/{session}/rfb"


def first_bytes(url: str, protocols: list[str], origin: str | None = None) -> tuple[bytes, int, str]:
    """What the relay sends first, and how it closed (0 while it is still open). Synchronous: the
    module's Playwright holds this thread's event loop."""
    with connect(
        url,
        subprotocols=protocols,  # type: ignore[arg-type]
        origin=origin,  # type: ignore[arg-type]
        open_timeout=10,
    ) as socket:
        try:
            data = socket.recv(timeout=10)
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None
            return b"", closed.rcvd.code, closed.rcvd.reason
        return data if isinstance(data, bytes) else data.encode(), 0, ""


def bearer(token: str) -> list[str]:
    return ["shadowdesk.v1", f"bearer.{token}"]


def test_the_owner_gets_rfb_through_the_relay(desk: Desk) -> None:
    data, code, _ = first_bytes(relay_url(desk), bearer(manage_token(USER)))
    assert (data, code) == (b"RFB 003.008\n", 0)
    listed = f"{desk.server.http_url}/v1/desktop/sessions"
    mine = httpx.get(listed, headers={"Authorization": f"Bearer {read_token(USER)}"}).json()
    assert mine == {"sessions": [SESSION]}
    others = httpx.get(listed, headers={"Authorization": f"Bearer {read_token(OTHER)}"}).json()
    assert others == {"sessions": []}


@pytest.mark.parametrize(
    ("who", "session", "code", "reason"),
    [
        (OTHER, SESSION, 1008, "permission_denied: you may open only your own desktops"),
        (USER, "desk-9", 1008, "not_found: you have no session 'desk-9'"),
        ("read-only", SESSION, 1008, "permission_denied: this needs a token with the 'manage' scope"),
    ],
)
def test_the_relay_refuses_what_is_not_the_callers_to_open(
    desk: Desk, who: str, session: str, code: int, reason: str
) -> None:
    token = read_token(USER) if who == "read-only" else manage_token(who)
    data, closed, why = first_bytes(relay_url(desk, session), bearer(token))
    assert (data, closed, why) == (b"", code, reason)


def test_the_relay_refuses_no_token_and_a_foreign_origin(desk: Desk) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        first_bytes(relay_url(desk), ["shadowdesk.v1"])
    assert refused.value.response.status_code == 403
    with pytest.raises(websockets.InvalidStatus) as foreign:
        first_bytes(relay_url(desk), bearer(manage_token(USER)), origin="https://evil.example")
    assert foreign.value.response.status_code == 403


def test_the_vnc_server_listens_on_no_network_port(desk: Desk) -> None:
    x11vnc = psutil.Process(desk.vnc.pid)
    assert x11vnc.name() == "x11vnc"
    assert x11vnc.net_connections(kind="inet") == []  # no TCP or UDP socket, IPv4 or IPv6
    listening = [c for c in x11vnc.net_connections(kind="unix") if c.laddr]
    assert [str(c.laddr) for c in listening] == [str(desk.vnc.socket_path)]
    assert stat.S_IMODE(desk.vnc.socket_path.parent.stat().st_mode) == 0o700
