"""Macro runs end to end: the real server replays a program through the real agent on a real desktop.

``shadowdesk server`` over real MinIO, ``shadowdesk agent`` on an Xvfb desktop with a session bus and
AT-SPI, mousepad holding a note, and Chromium showing a claim form served by a small HTTP server in this
test, which counts every submission. A hand-written program reads the vendor from mousepad (a loop over
the note's lines), types it and the parameters into the form, checks each field by reading it back,
waits for the user to confirm the sensitive submit (answered over the API), and is complete only once
the confirmation page's claim number is read back. Faults: the page silently drops a field (the run
halts and is never complete), a target that is never there (halts after its retries), and the server
killed mid-run (the run resumes; nothing is submitted twice). No run makes a model call.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from cloud_infer.auth import issue_token
from harness.chromium import chromium_argv
from harness.dbus import SessionBus
from harness.expense_desk import show
from harness.minio import MinioServer
from harness.processes import TOKEN_SECRET, ServerProcess, ShadowdeskProcess, desktop_agent, minio_store_env
from shadowdesk_common.desktop import VirtualDesktop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USER = f"wren-{uuid.uuid4().hex[:8]}"
SESSION = "wren-desk-1"
NOTE = "Vendor: Acme Travel GmbH\nProject: P-17\n"
PAGE = """<!doctype html><html><head><title>Expense claim {case}</title></head><body>
<h1>Expense claim</h1>
<form method=post action=/submit>
<p><label for=vendor>Vendor</label> <input id=vendor name=vendor type=text></p>
<p><label for=amount>Amount</label> <input id=amount name=amount type=text></p>
<p><label for=category>Category</label> <select id=category name=category>
  <option>Travel</option><option>Meals</option><option>Office</option></select></p>
<p><button type=submit>Submit claim</button></p>
</form>{fault}</body></html>"""
# The fault: the page quietly empties the amount a moment after each change, as a buggy portal might.
DROP_AMOUNT = """<script>document.getElementById('amount').addEventListener('input', e =>
  setTimeout(() => { e.target.value = '' }, 30))</script>"""
CHROMIUM_FORM = {"app_id": "chromium", "title_contains": "Expense claim"}
CONFIRMATION = {"app_id": "chromium", "title_contains": "Claim filed"}


def field(name: str, role: str = "entry") -> dict[str, Any]:
    return {"window": CHROMIUM_FORM, "role": role, "name": name}


PROGRAM: dict[str, Any] = {
    "name": "File an expense claim",
    "parameters": [
        {"name": "amount", "type": "money", "label": "Amount"},
        {"name": "category", "type": "choice", "choices": ["Travel", "Meals", "Office"]},
    ],
    "steps": [
        {
            "id": "read_note",
            "name": "Read the note",
            "action": "read",
            "target": {"window": {"app_id": "mousepad"}, "role": "text"},
            "save_as": "note",
        },
        {
            "id": "vendor_line",
            "over": "note",
            "row_pattern": r"^Vendor: (?P<vendor>.+)$",
            "steps": [
                {
                    "id": "type_vendor",
                    "name": "Type the vendor",
                    "action": "type",
                    "target": field("Vendor"),
                    "input": {"item": "vendor"},
                    "checks": [
                        {"kind": "field_value", "target": field("Vendor"), "equals": {"item": "vendor"}}
                    ],
                }
            ],
        },
        {
            "id": "type_amount",
            "name": "Type the amount",
            "action": "type",
            "target": field("Amount"),
            "input": {"param": "amount"},
            "retries": 1,
            "checks": [{"kind": "field_value", "target": field("Amount"), "equals": {"param": "amount"}}],
        },
        {
            "id": "pick_category",
            "name": "Pick the category",
            "action": "select",
            "target": field("Category", "combo box"),
            "input": {"param": "category"},
            "checks": [
                {
                    "kind": "field_value",
                    "target": field("Category", "combo box"),
                    "equals": {"param": "category"},
                }
            ],
        },
        {
            "id": "submit",
            "name": "Submit the claim",
            "action": "click",
            "target": field("Submit claim", "push button"),
            "sensitive": True,
            "timeout_s": 20,
            "checks": [
                {
                    "kind": "text_in_window",
                    "window": CONFIRMATION,
                    "pattern": "CLM-[0-9]+",
                    "save_as": "claim",
                }
            ],
        },
    ],
    "final_checks": [{"kind": "text_in_window", "window": CONFIRMATION, "equals": {"binding": "claim"}}],
}
PARAMETERS = {"amount": "42.50", "category": "Meals"}


@dataclass
class Portal:
    """The claim form's server: every submission it received."""

    submissions: list[dict[str, str]] = dataclass_field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                case = self.path.rsplit("/", 1)[-1]
                self._send(PAGE.format(case=case, fault=DROP_AMOUNT if case == "drop" else ""))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
                fields = {key: values[0] for key, values in parse_qs(body, keep_blank_values=True).items()}
                portal.submissions.append(fields)
                number = 1000 + len(portal.submissions)
                self._send(
                    f"<!doctype html><title>Claim filed {number}</title><h1>Claim filed</h1>"
                    f"<p>Claim number CLM-{number}</p><p>Vendor {fields.get('vendor', '')}</p>"
                )

            def _send(self, html: str) -> None:
                data = html.encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@dataclass
class Desk:
    desktop: VirtualDesktop
    bus: SessionBus
    server: ServerProcess
    agent: ShadowdeskProcess
    portal: Portal
    home: Path

    def open_form(self, case: str) -> None:
        """The form in a new tab of the one Chromium window (which is then titled by it)."""
        argv = chromium_argv(
            f"{self.portal.url}/form/{case}", self.home / "profile", "--force-renderer-accessibility"
        )
        self.desktop.launch(argv, env=self.bus.app_env)
        self.desktop.wait_for_window(f"Expense claim {case} - Chromium")

    def api(self) -> httpx.Client:
        token = issue_token(TOKEN_SECRET, USER, ["read", "manage"], ttl_s=3600)
        return httpx.Client(
            base_url=self.server.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )


@pytest.fixture(scope="module")
def desk(minio_server: MinioServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    home = tmp_path_factory.mktemp("runner")
    portal = Portal()
    portal.start()
    server = ServerProcess(
        minio_store_env(minio_server.endpoint, minio_server.access_key, minio_server.secret_key),
        home / "server.log",
        recall_enabled="false",
    )
    server.start()
    try:
        with VirtualDesktop(width=1280, height=800) as desktop, SessionBus(desktop.env) as bus:
            note = home / "note.txt"
            note.write_text(NOTE, encoding="utf-8")
            desktop.launch(
                ["mousepad", str(note)], env={**bus.app_env, "XDG_CONFIG_HOME": str(home / "config")}
            )
            desktop.wait_for_window(f"{note} - Mousepad")
            agent = desktop_agent(
                desktop.display,
                bus.app_env,
                server,
                USER,
                SESSION,
                home,
                sensors="system_metrics",
                flush_interval_s="0.1",
            )
            running = Desk(desktop, bus, server, agent, portal, home)
            running.open_form("first")
            try:
                yield running
            finally:
                agent.terminate()
    finally:
        server.terminate()
        assert portal.server is not None
        portal.server.shutdown()


def start_run(
    desk: Desk, api: httpx.Client, program: dict[str, Any] = PROGRAM, parameters: dict[str, str] = PARAMETERS
) -> str:
    deadline = time.monotonic() + 60
    while True:  # until the agent's first stream made the session known
        started = api.post(
            "/v1/workflows/runs", json={"program": program, "session_id": SESSION, "parameters": parameters}
        )
        if started.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert started.status_code == 200, started.text
    run_id: str = started.json()["run_id"]
    return run_id


def wait_run(
    desk: Desk, api: httpx.Client, run_id: str, *statuses: str, timeout_s: float = 180
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        reply = None
        with contextlib.suppress(httpx.TransportError):  # the server is restarting
            reply = api.get(f"/v1/workflows/runs/{run_id}")
        if reply is not None and reply.status_code == 200:
            run: dict[str, Any] = reply.json()
            if run["status"] in statuses:
                return run
        if time.monotonic() > deadline:
            raise AssertionError(
                f"run {run_id} not {statuses}: {reply.text if reply else None}\n"
                f"server: {desk.server.log()[-3000:]}\nagent: {desk.agent.log()[-3000:]}"
            )
        time.sleep(0.2)


def answer(api: httpx.Client, run: dict[str, Any], decision: str) -> None:
    reply = api.post(
        f"/v1/workflows/runs/{run['run_id']}/answer",
        json={"decision": decision, "question_id": run["question"]["question_id"]},
    )
    assert reply.status_code == 200, reply.text


def test_a_run_fills_the_form_from_parameters_and_mousepad_and_completes_on_the_claim_number(
    desk: Desk,
) -> None:
    before = len(desk.portal.submissions)
    with desk.api() as api:
        run_id = start_run(desk, api)
        asked = wait_run(desk, api, run_id, "waiting", "failed", "aborted")
        assert asked["status"] == "waiting", show(asked)
        assert asked["question"]["kind"] == "confirm" and asked["step_id"] == "submit", show(asked)
        assert len(desk.portal.submissions) == before, "nothing is submitted before the user confirms"
        done_steps = [(s["step_id"], s["outcome"]) for s in asked["steps"]]
        assert done_steps == [
            ("read_note", "ok"),
            ("type_vendor", "ok"),
            ("type_amount", "ok"),
            ("pick_category", "ok"),
        ], asked["steps"]
        answer(api, asked, "confirm")
        run = wait_run(desk, api, run_id, "complete", "failed", "aborted")
        assert run["status"] == "complete", show(run)
        assert desk.portal.submissions[before:] == [
            {"vendor": "Acme Travel GmbH", "amount": "42.50", "category": "Meals"}
        ]
        claim = f"CLM-{1000 + len(desk.portal.submissions)}"
        assert run["bindings"]["claim"] == claim
        final = run["steps"][-1]
        assert (
            final["step_id"] == "final_checks" and final["checks"][0]["held"] and final["checks"][0]["actual"]
        )
        vendor = next(s for s in run["steps"] if s["step_id"] == "type_vendor")
        assert (
            vendor["row"] == 0 and vendor["found_by"] and vendor["checks"][0]["actual"] == "Acme Travel GmbH"
        )
        assert vendor["frame_before"] and vendor["frame_after"]
        frame = api.get(f"/v1/frames/{SESSION}/{vendor['frame_after']['key'].rsplit('/', 1)[-1]}")
        assert frame.status_code == 200 and frame.content[:4] == b"RIFF"
        history = api.get("/v1/workflows/runs").json()["runs"]
        assert history[0]["run_id"] == run_id and history[0]["status"] == "complete"
        usage = api.get("/v1/llm/usage").json()
        assert (usage["requests"], usage["embedded_texts"]) == (0, 0), usage


def test_a_silently_dropped_field_halts_and_the_run_is_never_complete(desk: Desk) -> None:
    desk.open_form("drop")
    before = len(desk.portal.submissions)
    with desk.api() as api:
        run_id = start_run(desk, api)
        halted = wait_run(desk, api, run_id, "waiting", "complete", "failed")
        assert halted["status"] == "waiting" and halted["question"]["kind"] == "halt", show(halted)
        assert halted["step_id"] == "type_amount" and "42.50" in halted["question"]["reason"]
        tries = [s for s in halted["steps"] if s["step_id"] == "type_amount"]
        assert [s["outcome"] for s in tries] == ["failed", "failed"]
        answer(api, halted, "abort")
        run = wait_run(desk, api, run_id, "aborted", "complete")
        assert run["status"] == "aborted"
    assert len(desk.portal.submissions) == before


def test_a_missing_target_halts_after_its_retries_and_skip_ends_the_run_failed(desk: Desk) -> None:
    desk.open_form("missing")
    program = {
        "name": "Approve",
        "steps": [
            {
                "id": "approve",
                "action": "click",
                "target": field("Approve", "push button"),
                "timeout_s": 1.5,
                "retries": 1,
            },
            {
                "id": "type_amount",
                "action": "type",
                "target": field("Amount"),
                "input": {"literal": "7.00"},
                "checks": [{"kind": "field_value", "target": field("Amount"), "equals": {"literal": "7.00"}}],
            },
        ],
    }
    with desk.api() as api:
        run_id = start_run(desk, api, program, {})
        halted = wait_run(desk, api, run_id, "waiting", "complete", "failed")
        assert halted["status"] == "waiting" and halted["step_id"] == "approve", show(halted)
        assert [s["outcome"] for s in halted["steps"]] == ["failed", "failed"]
        assert all(
            c["purpose"] == "wait" for s in halted["steps"] for c in s["commands"] if c["status"] == "failed"
        )
        answer(api, halted, "skip")
        run = wait_run(desk, api, run_id, "failed", "complete")
        assert run["status"] == "failed" and run["skipped"] == ["approve"]
        assert [s["outcome"] for s in run["steps"]][-1] == "ok"  # the rest still ran and held


def test_the_server_killed_mid_run_resumes_and_submits_once(desk: Desk) -> None:
    desk.open_form("restart")
    before = len(desk.portal.submissions)
    with desk.api() as api:
        run_id = start_run(desk, api)
        asked = wait_run(desk, api, run_id, "waiting", "failed")
        assert asked["question"]["kind"] == "confirm", asked
        answer(api, asked, "confirm")
        desk.server.kill()  # mid-submit: the click may be queued, delivered, or done
        desk.server.start()
        run = wait_run(desk, api, run_id, "complete", "failed", "aborted", "waiting")
        if run["status"] == "waiting":  # halted cleanly (e.g. interrupted): the user looks and takes over
            assert run["question"]["kind"] == "halt", run
            answer(api, run, "take_over")
            run = wait_run(desk, api, run_id, "complete", "failed", "aborted")
        assert run["status"] == "complete", show(run)
        assert len(desk.portal.submissions) == before + 1, desk.portal.submissions
        usage = api.get("/v1/llm/usage").json()
        assert (usage["requests"], usage["embedded_texts"]) == (0, 0), usage
