"""The admin console in a real headless Chromium, over the real cloud server fed by real agents.

One desktop session (Xvfb, mousepad and Chromium, the real agent with its window, app, accessibility,
selection and metrics sensors) carries canary strings in a window title, in typed text, in the clipboard
and in a URL; a disk rule set below this machine's real disk use makes its real samples open an
incident. The console (``shadowdesk console``, its own process and port) signs in viewers, operators
and admins from its local user store and acts for them with tokens it exchanged for their roles.
Screenshots of the pages go to docs/images/console-*.png.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from cloud_infer.auth import issue_token
from cloud_infer.diagnostics.service import pseudonym, pseudonym_key
from harness.chromium import chromium_argv
from harness.console import ConsoleProcess
from harness.dbus import SessionBus
from harness.processes import (
    TOKEN_SECRET,
    ServerProcess,
    ShadowdeskProcess,
    agent_env,
    desktop_agent,
    wait_until,
)
from recall_store.config import StoreSettings
from recall_store.event_log import EventLog, LoggedEvent
from recall_store.factory import open_store
from shadowdesk_common.desktop import VirtualDesktop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "docs" / "images"
USER, SESSION = "carol-canary@example.com", "carol-desk-3"
NEWCOMER, NEWCOMER_SESSION = "nina-new@example.com", "nina-desk-1"
# What a user's desktop shows and copies; no admin page or ops answer may ever contain any of them.
TITLE_CANARY, TYPED_CANARY = "CanaryTitleQ7", "CanaryTypedK4"
CLIP_CANARY, URL_CANARY = "CanaryClipZ9", "canary-url-x3"
CANARIES = (TITLE_CANARY, TYPED_CANARY, CLIP_CANARY, URL_CANARY)
PASSWORDS = {"ada": "ada-pass-1", "bob": "bob-pass-2", "olga": "olga-pass-3", "vic": "vic-pass-4"}
ROLES = {"ada": "admin", "bob": "admin", "olga": "operator", "vic": "viewer"}
UI_MS = 15_000
ADMIN = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, 'ops-test', ['read', 'admin'])}"}


def subject_of(user: str, session: str) -> str:
    return pseudonym(pseudonym_key(TOKEN_SECRET), user, session)


@dataclass
class Ops:
    server: ServerProcess
    console: ShadowdeskProcess
    console_url: str
    agent: ShadowdeskProcess
    desktop: VirtualDesktop
    home: Path
    others: list[ShadowdeskProcess] = field(default_factory=list)

    def cloud(self, path: str, **params: Any) -> Any:
        reply = httpx.get(f"{self.server.http_url}/v1/ops/{path}", headers=ADMIN, params=params, timeout=10)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def logged(self) -> str:
        """The canary user's events as the server logged them in their space, as text."""

        async def read() -> list[LoggedEvent]:
            store = open_store(StoreSettings(backend="local", local_root=self.home / "store"))
            try:
                return await EventLog(store).read(USER, 0, 2**63 - 1)
            finally:
                await store.close()

        # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
        with ThreadPoolExecutor(1) as pool:
            events = pool.submit(asyncio.run, read()).result()
        return "\n".join(str(logged.event) for logged in events)

    def incidents_of(self, subject: str) -> list[dict[str, Any]]:
        found = self.cloud("incidents", state="all")["incidents"]
        return [i for i in found if any(p["subject"] == subject for p in i["sessions"])]

    def sign_in(self, browser: Browser, username: str) -> Page:
        page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
        page.goto(f"{self.console_url}/login")
        page.fill("#username", username)
        page.fill("#password", PASSWORDS[username])
        page.click("#sign-in")
        page.wait_for_url(f"{self.console_url}/")
        expect(page.locator("#who")).to_have_text(f"{username} ({ROLES[username]})", timeout=UI_MS)
        return page


class CanaryPage:
    """A page at a canary URL for the desktop's Chromium."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = b"<!doctype html><title>Quarterly plan</title><p>Plan of the quarter</p>"
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{URL_CANARY}"


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    home = tmp_path_factory.mktemp("console")
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(home / "store")}
    server = ServerProcess(
        # Any disk in use is "full" here: the desktops' real samples open incidents; a second session
        # opens an incident of its own (the group window is 1 s), an earlier one of the same rule.
        {
            **store,
            "SHADOWDESK_DIAGNOSTICS_DISK_USED_PERCENT": "0.1",
            "SHADOWDESK_DIAGNOSTICS_GROUP_WINDOW_S": "1",
            "SHADOWDESK_DIAGNOSTICS_VERIFY_S": "1",
        },
        home / "server.log",
        recall_enabled="false",
    )
    server.start()
    console = ConsoleProcess(server, home, {name: (ROLES[name], PASSWORDS[name]) for name in ROLES})
    canary_page = CanaryPage()
    try:
        console.start()
        with VirtualDesktop(width=1280, height=800) as desktop, SessionBus(desktop.env) as bus:
            note = home / f"{TITLE_CANARY}.txt"
            note.write_text("notes\n", encoding="utf-8")
            desktop.launch(["mousepad", str(note)], env={**bus.app_env, "XDG_CONFIG_HOME": str(home / "cfg")})
            window = desktop.wait_for_window(f"{note} - Mousepad")
            argv = chromium_argv(canary_page.url, home / "profile", "--force-renderer-accessibility")
            desktop.launch(argv, env=bus.app_env)
            browser_window = desktop.wait_for_window("Quarterly plan - Chromium")
            agent = desktop_agent(
                desktop.display,
                bus.app_env,
                server,
                USER,
                SESSION,
                home,
                sensors="window_focus,apps,accessibility,selection,system_metrics",
                metrics_interval_s="0.5",
                flush_interval_s="0.2",
                allowed_actions="kill_process,diagnostic_snapshot",
            )
            running = Ops(server, console, console.url, agent, desktop, home)
            try:
                # Once the agent streams: typed text and a copy in mousepad (its title, text and the
                # clipboard), then the browser at the canary URL, each until the user's log has them.
                wait_until(lambda: running.incidents_of(subject_of(USER, SESSION)), 60, "the disk incident")
                desktop.activate(window)
                desktop.xdotool("type", "--delay", "20", f"{TYPED_CANARY}\n{CLIP_CANARY}")
                desktop.xdotool("key", "shift+Home", "ctrl+c")

                def logged(*canaries: str) -> bool:
                    text = running.logged()
                    return all(canary in text for canary in canaries)

                wait_until(lambda: logged(TITLE_CANARY, TYPED_CANARY, CLIP_CANARY), 30, "mousepad text", 1)
                desktop.activate(browser_window)
                wait_until(lambda: logged(URL_CANARY), 30, "the canary URL in the user's log", 1)
                yield running
            finally:
                for other in running.others:
                    other.terminate()
                agent.terminate()
    finally:
        canary_page.server.shutdown()
        console.terminate()
        server.terminate()


def the_incident(ops: Ops) -> dict[str, Any]:
    (incident,) = ops.incidents_of(subject_of(USER, SESSION))
    return dict(incident)


def test_each_role_signs_in_and_a_viewer_can_neither_see_nor_use_an_action(
    ops: Ops, browser: Browser
) -> None:
    incident = the_incident(ops)
    wrong = browser.new_context().new_page()
    wrong.goto(f"{ops.console_url}/login")
    wrong.fill("#username", "vic")
    wrong.fill("#password", "not-vics-password")
    wrong.click("#sign-in")
    expect(wrong.locator("#login-error")).to_have_text("Unknown user or wrong password.", timeout=UI_MS)
    wrong.goto(f"{ops.console_url}/")
    assert wrong.url == f"{ops.console_url}/login"  # pages need a sign-in

    viewer = ops.sign_in(browser, "vic")
    expect(viewer.locator(f'#open-incidents a[href="/incidents/{incident["incident_id"]}"]')).to_be_visible(
        timeout=UI_MS
    )
    viewer.goto(f"{ops.console_url}/incidents/{incident['incident_id']}")
    expect(viewer.locator("#explanation")).to_contain_text("disk", timeout=UI_MS)
    expect(viewer.locator("#action-dialog")).to_have_count(0)
    expect(viewer.locator("#analysis")).to_have_text("Not asked yet.", timeout=UI_MS)
    expect(viewer.locator("#analyse")).to_have_count(0)  # asking a model is an operator's
    viewer.goto(f"{ops.console_url}/sessions/{subject_of(USER, SESSION)}")
    expect(viewer.locator("#subject")).to_be_visible(timeout=UI_MS)
    # This desktop has no thin client open: the drill-down says so where its figures would be.
    expect(viewer.locator("#session-experience")).to_have_text("No report from a thin client.", timeout=UI_MS)
    expect(viewer.locator("#reveal")).to_have_count(0)
    path = f"{ops.console_url}/api/ops/incidents/{incident['incident_id']}/remediations"
    refused = viewer.request.post(path, data={"action": "free_temp_space", "dry_run": True})
    assert refused.status == 403, refused.text()
    reveal = viewer.request.post(
        f"{ops.console_url}/api/ops/sessions/{subject_of(USER, SESSION)}/reveal", data={"reason": "curious"}
    )
    assert reveal.status == 403

    operator = ops.sign_in(browser, "olga")
    operator.goto(f"{ops.console_url}/incidents/{incident['incident_id']}")
    expect(operator.locator("#action-dialog")).to_be_visible(timeout=UI_MS)
    options = operator.locator("#action option").all_text_contents()
    assert options == ["free_temp_space", "diagnostic_snapshot"]  # no risky action for an operator
    operator.click("#dry-run")
    expect(operator.locator("#dry-run-result")).to_contain_text("Would remove temporary files", timeout=UI_MS)
    expect(operator.locator("#reveal")).to_have_count(0)
    # The packaged model answers through the gateway; whatever it says is held to the facts it cites.
    operator.click("#analyse")
    expect(operator.locator("#analysis")).to_contain_text("embedded:", timeout=120_000)
    expect(operator.locator("#analysis-cause")).not_to_be_empty()
    risky = operator.request.post(path, data={"action": "end_process", "pid": 4242, "executable": "dd"})
    assert risky.status == 403

    viewer.request.post(f"{ops.console_url}/api/logout", data={})
    assert viewer.request.get(f"{ops.console_url}/api/me").status == 401
    for page in (wrong, viewer, operator):
        page.context.close()


def test_the_overview_shows_a_new_session_within_two_seconds(ops: Ops, browser: Browser) -> None:
    page = ops.sign_in(browser, "vic")
    expect(page.locator("#live-state")).to_contain_text("live", timeout=UI_MS)
    subject = subject_of(NEWCOMER, NEWCOMER_SESSION)
    token = issue_token(TOKEN_SECRET, NEWCOMER, "ingest", session_id=NEWCOMER_SESSION)
    env = agent_env(
        ops.server,
        token,
        NEWCOMER,
        NEWCOMER_SESSION,
        ops.home / "newcomer.sqlite3",
        sensors="system_metrics",
        metrics_interval_s="0.5",
    )
    newcomer = ShadowdeskProcess("agent", env, ops.home / "newcomer.log")
    newcomer.start()
    ops.others.append(newcomer)
    wait_until(
        lambda: any(s["subject"] == subject for s in ops.cloud("sessions")["sessions"]),
        60,
        "the new session's first metrics in the cloud",
        interval_s=0.05,
    )
    reported = time.monotonic()
    row = page.locator(f'#fleet-grid tr[data-subject="{subject}"]')
    expect(row).to_be_visible(timeout=UI_MS)
    shown_s = time.monotonic() - reported
    assert shown_s <= 2.0, f"the overview showed the new session {shown_s:.2f} s after it reported"
    expect(page.locator(f'#fleet-grid tr[data-subject="{subject}"] .badge')).to_have_text(
        "critical", timeout=UI_MS
    )  # its own disk incident, once its finding held
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / "console-overview.png"), full_page=True)
    page.context.close()


def test_a_risky_action_is_dry_run_requested_and_approved_by_a_second_admin_and_audited(
    ops: Ops, browser: Browser
) -> None:
    incident = the_incident(ops)
    victim = subprocess.Popen(["sleep", "600"])  # the desktop's runaway process
    try:
        ada = ops.sign_in(browser, "ada")
        ada.goto(f"{ops.console_url}/incidents/{incident['incident_id']}")
        expect(ada.locator("#action-dialog")).to_be_visible(timeout=UI_MS)
        ada.select_option("#action", "end_process")
        ada.fill("#pid", str(victim.pid))
        ada.fill("#executable", "sleep")
        expect(ada.locator("#request")).to_be_disabled()  # the dry run comes first
        ada.click("#dry-run")
        expect(ada.locator("#dry-run-result")).to_have_text(
            f"Would end sleep (pid {victim.pid}) on 1 session (1 of 1 reachable); "
            "a second admin must approve it.",
            timeout=UI_MS,
        )
        expect(ada.locator("#evidence-chart .uplot")).to_be_visible(timeout=UI_MS)
        ada.screenshot(path=str(IMAGES / "console-incident.png"), full_page=True)
        ada.click("#request")
        expect(ada.locator("#request-status")).to_have_text(
            "Requested: waiting for approval by another admin.", timeout=UI_MS
        )
        waiting = ada.locator("#remediations li .status")
        expect(waiting).to_have_text("waiting for approval", timeout=UI_MS)
        ada.locator("#remediations button.approve").click()  # her own request: the cloud refuses
        expect(ada.locator("#approve-error")).to_contain_text("another admin", timeout=UI_MS)
        assert victim.poll() is None

        bob = ops.sign_in(browser, "bob")
        bob.goto(f"{ops.console_url}/incidents/{incident['incident_id']}")
        bob.locator("#remediations button.approve").click(timeout=UI_MS)
        expect(bob.locator("#remediations li").first).to_contain_text(
            "approved by console.bob", timeout=UI_MS
        )
        victim.wait(timeout=30)  # the agent ended it
        expect(bob.locator("#remediations li .status").first).to_have_text("done", timeout=30_000)

        bob.goto(f"{ops.console_url}/audit")
        expect(bob.locator("#chain")).to_contain_text("Hash chain intact", timeout=UI_MS)
        rows = bob.locator("#audit tbody tr")
        expect(rows.filter(has_text="remediation.end_process.finished")).to_have_count(1, timeout=UI_MS)
        steps = [
            (row[2], row[3])
            for row in (r.split("\t") for r in rows.evaluate_all("rs => rs.map(r => r.innerText)"))
            if row[3].startswith("remediation.end_process")
        ]
        assert steps == [
            ("console.ada", "remediation.end_process.requested"),
            ("console.bob", "remediation.end_process.approved"),
            ("console.ada", "remediation.end_process.finished"),
        ], steps
        bob.screenshot(path=str(IMAGES / "console-audit.png"), full_page=True)
        for page in (ada, bob):
            page.context.close()
    finally:
        victim.kill()
        victim.wait()


def test_an_admin_reveals_whose_session_it_is_with_a_reason_and_it_is_audited(
    ops: Ops, browser: Browser
) -> None:
    subject = subject_of(USER, SESSION)
    ada = ops.sign_in(browser, "ada")
    ada.goto(f"{ops.console_url}/sessions/{subject}")
    expect(ada.locator("#session-chart .uplot")).to_be_visible(timeout=UI_MS)
    ada.fill("#reveal-reason", "help desk ticket 4711: the user asked why their desktop is slow")
    ada.click("#reveal")
    expect(ada.locator("#revealed")).to_contain_text(f"User {USER}, session {SESSION}", timeout=UI_MS)
    ada.fill("#reveal-reason", "")
    ada.screenshot(path=str(IMAGES / "console-session.png"), full_page=True)
    audit = ops.cloud("audit", limit=500)
    (entry,) = [e for e in audit["entries"] if e["action"] == "session.reveal"]
    assert (entry["actor"], entry["subjects"]) == ("console.ada", [subject])
    assert entry["reason"].startswith("help desk ticket 4711") and audit["intact"]
    assert USER not in json.dumps(audit)
    ada.goto(f"{ops.console_url}/audit")
    expect(ada.locator("#audit tbody tr", has_text="session.reveal")).to_contain_text("console.ada")
    ada.context.close()


def test_search_finds_the_earlier_incident(ops: Ops, browser: Browser) -> None:
    first = the_incident(ops)
    newcomer = subject_of(NEWCOMER, NEWCOMER_SESSION)
    wait_until(lambda: ops.incidents_of(newcomer), 60, "the newcomer's own disk incident")
    (second,) = ops.incidents_of(newcomer)
    vic = ops.sign_in(browser, "vic")
    vic.goto(f"{ops.console_url}/search")
    vic.fill("#q", "disk critical")
    vic.click("#search")
    for incident in (first, second):
        expect(vic.locator(f'#results a[href="/incidents/{incident["incident_id"]}"]')).to_be_visible(
            timeout=UI_MS
        )
    vic.fill("#q", "memory")
    vic.click("#search")
    expect(vic.locator("#results")).to_have_text("no incident matches", timeout=UI_MS)
    vic.goto(f"{ops.console_url}/incidents/{second['incident_id']}")
    expect(vic.locator(f'#similar a[href="/incidents/{first["incident_id"]}"]')).to_be_visible(timeout=UI_MS)
    vic.context.close()


def test_no_console_page_or_ops_answer_shows_what_is_on_the_users_screen(ops: Ops, browser: Browser) -> None:
    # The canaries did reach the cloud, in the user's own space (so this test can fail).
    logged = ops.logged()
    for canary in CANARIES:
        assert canary in logged, f"{canary} never reached the cloud"

    seen: list[str] = []
    page = ops.sign_in(browser, "ada")  # an admin sees the most

    def on_response(response: Any) -> None:
        if response.url.startswith(ops.console_url) and "/vendor/" not in response.url:
            seen.append(response.text())

    page.on("response", on_response)
    page.on("websocket", lambda ws: ws.on("framereceived", lambda frame: seen.append(str(frame))))
    incidents = ops.cloud("incidents", state="all")["incidents"]
    sessions = ops.cloud("sessions")["sessions"]
    pages = ["/", "/audit", "/search?q=disk"]
    pages += [f"/incidents/{i['incident_id']}" for i in incidents]
    pages += [f"/sessions/{s['subject']}" for s in sessions]
    for path in pages:
        page.goto(f"{ops.console_url}{path}")
        expect(page.locator("#live-state")).to_contain_text("live", timeout=UI_MS)
        page.wait_for_timeout(1200)  # a websocket snapshot or two
        seen.append(page.content())
        seen.append(page.locator("body").inner_text())
    assert sum('"sessions"' in text for text in seen) >= len(pages)  # websocket snapshots were captured

    answers = [ops.cloud("sessions"), ops.cloud("incidents", state="all"), ops.cloud("audit", limit=500)]
    for incident in incidents:
        answers += [ops.cloud(f"incidents/{incident['incident_id']}")]
        answers += [
            ops.cloud(f"incidents/{incident['incident_id']}/{what}") for what in ("similar", "remediations")
        ]
    answers += [ops.cloud(f"sessions/{s['subject']}/series", seconds=3600) for s in sessions]
    for query in CANARIES:  # searching for a canary finds nothing either
        answers.append(ops.cloud("incidents", state="all", q=query))
        assert answers[-1]["incidents"] == []
    metrics = httpx.get(f"{ops.server.http_url}/v1/ops/metrics", headers=ADMIN, timeout=10).text
    everything = "\n".join([*seen, json.dumps(answers), metrics]).lower()
    for canary in CANARIES:
        assert canary.lower() not in everything, f"{canary} is on an admin page or in an ops answer"
    for identity in (USER, SESSION, NEWCOMER, NEWCOMER_SESSION):
        assert identity not in everything  # pseudonyms only (the audited reveal was its own test)
    page.context.close()
