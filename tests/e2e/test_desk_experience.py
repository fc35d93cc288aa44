"""The thin client's experience metrics move with the network, end to end.

A real desktop (Xvfb, an xterm echoing what is typed, another printing the time twenty times a second),
x11vnc on a unix socket, the real server and agent, and headless Chromium on ``/desk`` through a
Toxiproxy proxy in front of the cloud's HTTP port (this kernel has no netem): the page's own reports,
read back from the cloud's ops API, show the round trip, frame delay and input latency rise by about
the 150 ms each way added, the frame rate fall, and the bandwidth fall under a bandwidth limit; the
``experience_degraded`` incident opens under the added delay and not at the baseline.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from cloud_infer.auth import issue_token
from cloud_infer.diagnostics.service import pseudonym, pseudonym_key
from harness.dbus import SessionBus
from harness.processes import TOKEN_SECRET, ServerProcess, desktop_agent, wait_until
from harness.toxiproxy import ToxiproxyServer
from shadowdesk_common.desktop import VirtualDesktop
from shadowdesk_common.vnc import VncServer
from tests.support.sidebar_page import UI_TIMEOUT_MS, login_ticket, read_token

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
logger = logging.getLogger(__name__)

USER, SESSION = "exp-alice", "exp-desk-1"
VIEWER = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, 'ops-view-1', ['read', 'ops_view'])}"}
ADDED_MS = 150  # each way
REPORT_S = 5
# The rule's threshold in this test: far above the baseline here, far below a 300 ms round trip.
LAG_MS = 200
CLOCK = "while :; do date +%T.%N; sleep 0.05; done"


@dataclass
class Link:
    server: ServerProcess
    toxiproxy: ToxiproxyServer
    proxy: str
    url: str  # the cloud's HTTP port as the browser reaches it: through the proxy
    typing_window: int
    desktop: VirtualDesktop

    @property
    def subject(self) -> str:
        return pseudonym(pseudonym_key(TOKEN_SECRET), USER, SESSION)

    def reports(self, since: float) -> list[dict[str, Any]]:
        """The page's reports that reached the cloud at or after ``since`` (the cloud's clock)."""
        reply = httpx.get(
            f"{self.server.http_url}/v1/ops/sessions/{self.subject}/series",
            params={"seconds": 3600},
            headers=VIEWER,
        )
        if reply.status_code == 404:
            return []
        series = reply.json()
        rows = [
            {"t": t, **{name: column[i] for name, column in series["experience"].items()}}
            for i, t in enumerate(series["experience_t"])
        ]
        return [row for row in rows if row["t"] >= since]

    def incidents(self) -> list[str]:
        reply = httpx.get(f"{self.server.http_url}/v1/ops/incidents", params={"state": "all"}, headers=VIEWER)
        return [i["rule"] for i in reply.json()["incidents"]]


@pytest.fixture(scope="module")
def link(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Link]:
    home = tmp_path_factory.mktemp("experience")
    with VirtualDesktop(width=1024, height=640) as desktop, SessionBus(desktop.env) as bus:
        desktop.launch(["xterm", "-T", "typing", "-geometry", "80x24+0+0", "-e", "cat"])
        typing = desktop.wait_for_window("typing")
        desktop.launch(["xterm", "-T", "clock", "-geometry", "40x6+560+0", "-e", "sh", "-c", CLOCK])
        desktop.wait_for_window("clock")
        with (
            VncServer(desktop.display, log_path=home / "x11vnc.log") as vnc,
            ToxiproxyServer(home / "toxiproxy.log") as toxiproxy,
        ):
            store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(home / "store")}
            server = ServerProcess(
                store,
                home / "server.log",
                recall_enabled="false",
                desktop_endpoints=f'{{"{USER}/{SESSION}": "{vnc.endpoint}"}}',
                diagnostics_experience_lag_ms=str(LAG_MS),
                diagnostics_experience_for_s="15",
            )
            server.start()
            try:
                agent = desktop_agent(
                    desktop.display, bus.app_env, server, USER, SESSION, home, sensors="system_metrics"
                )
                try:
                    headers = {"Authorization": f"Bearer {read_token(USER)}"}
                    wait_until(
                        lambda: httpx.get(f"{server.http_url}/v1/sessions", headers=headers).json()[
                            "sessions"
                        ],
                        30,
                        "the agent's session",
                    )
                    listen = toxiproxy.proxy("desk", f"127.0.0.1:{server.http_port}")
                    yield Link(server, toxiproxy, "desk", f"http://{listen}", typing, desktop)
                finally:
                    agent.terminate()
            finally:
                server.terminate()


def type_for(page: Page, seconds: float) -> None:
    """Keys typed on the desktop's canvas, about eight a second, for ``seconds``."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        page.keyboard.type("experience ", delay=120)


def medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    names = ("rtt_ms", "frame_delay_ms", "input_latency_ms", "fps", "bytes_down_per_s", "lag_ms")
    found = {}
    for name in names:
        values = [row[name] for row in rows if row.get(name) is not None]
        assert values, (name, rows)
        found[name] = statistics.median(values)
    return found


def phase(link: Link, page: Page, seconds: float) -> dict[str, float]:
    """Type for ``seconds``; the medians of the reports whose whole window fell in that time."""
    start = time.time()
    type_for(page, seconds)
    rows = [row for row in link.reports(start + REPORT_S + 1) if row["t"] <= time.time()]
    assert len(rows) >= 2, rows
    return medians(rows)


def test_the_reported_experience_follows_added_delay_and_a_bandwidth_limit(
    browser: Browser, link: Link
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{link.url}/desk#login={login_ticket(USER)}")
        expect(page.get_by_test_id("desk-status")).to_have_text("Connected", timeout=UI_TIMEOUT_MS)
        link.desktop.activate(link.typing_window)
        page.locator("#screen canvas").focus()

        baseline = phase(link, page, 17)
        readout = page.get_by_test_id("desk-experience")
        expect(readout).to_be_visible()
        expect(readout).to_contain_text("round trip")
        assert baseline["lag_ms"] < LAG_MS / 2, baseline
        assert baseline["fps"] > 5 and baseline["bytes_down_per_s"] > 0, baseline
        assert "experience_degraded" not in link.incidents()

        link.toxiproxy.add_latency(link.proxy, ADDED_MS)
        delayed = phase(link, page, 27)
        added = 2 * ADDED_MS
        # RFB is pulled: one update request in flight, so on a screen that keeps changing an input
        # waits for the next request (up to one more round trip) before its update comes back.
        for name, most in (("rtt_ms", 1.4), ("frame_delay_ms", 1.4), ("input_latency_ms", 2.0)):
            rise = delayed[name] - baseline[name]
            assert 0.75 * added <= rise <= most * added, (name, baseline, delayed)
        assert delayed["fps"] < baseline["fps"], (baseline, delayed)
        wait_until(lambda: "experience_degraded" in link.incidents(), 30, "the experience_degraded incident")

        link.toxiproxy.remove_latency(link.proxy)
        # A quarter of what the baseline carried, so the limit is what holds it back.
        limit_kib = max(1, int(baseline["bytes_down_per_s"] / 1024 / 4))
        link.toxiproxy.limit_bandwidth(link.proxy, limit_kib)
        limited = phase(link, page, 17)
        link.toxiproxy.remove_bandwidth_limit(link.proxy)
        assert limited["bytes_down_per_s"] <= 1.3 * limit_kib * 1024, (limit_kib, baseline, limited)
        assert limited["bytes_down_per_s"] < baseline["bytes_down_per_s"] / 2, (baseline, limited)
        logger.info(
            "experience medians: baseline %s; +%d ms each way %s; %d KiB/s down %s",
            baseline,
            ADDED_MS,
            delayed,
            limit_kib,
            limited,
        )
        assert not errors, errors
    finally:
        context.close()
