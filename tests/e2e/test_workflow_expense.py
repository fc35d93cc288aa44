"""The 报销 expense claim, recorded once by demonstration and replayed on new invoices, end to end.

``shadowdesk server`` over real MinIO, ``shadowdesk agent`` (recorder, executor, accessibility sensor) on
an Xvfb desktop with a session bus and AT-SPI, the expense portal (its own SQLite) in a Chromium with
``--force-renderer-accessibility``, the invoice PDF in evince, the cost centre in mousepad.

1. Recording: ``POST /v1/workflows/recordings``, then a person's mouse and keyboard (xdotool): look at
   the invoice in evince, sign in, fill page 1 with what the invoice says, copy the cost centre from
   mousepad (shift+End, ctrl+c) and paste it on page 2, pick the category from the drop-down, next,
   submit, see the claim number; stop. The compiled macro's parameters and bindings are asserted.
2. Replay: the user lists the drop-down's other categories in the macro (the recording saw one; a new
   version through ``PUT /v1/workflows/macros/{id}``), then ``POST /v1/workflows/runs`` of that macro on
   ``REPLAY_INVOICES`` new invoices (other values, layouts, both languages), each in a fresh signed-out
   Chromium, the invoice's values as parameters, the password as a secret, the cost centre read again
   from mousepad; the sensitive submit is confirmed through the answer API. Every claim in the portal's
   database is exactly the invoice's, filed exactly once; no model call is made.

A click holds the button a moment, as a hand does: the recorder hit-tests at the press, and an
instantaneous xdotool click lets Chromium navigate before it looks (then the next page's element is recorded).

``REPLAY_INVOICES`` is 3 to keep CI time bounded; the benchmark replays 20 or more.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_infer.auth import issue_token
from cloud_infer.workflows.program import from_yaml, to_yaml
from demo_apps.expense_portal import PortalConfig, PortalDatabase, PortalServer
from demo_apps.expense_portal.config import CATEGORIES
from demo_apps.invoices import Invoice, make_invoice, write_pdf
from harness.chromium import chromium_argv
from harness.dbus import SessionBus
from harness.minio import MinioServer
from harness.processes import (
    TOKEN_SECRET,
    ServerProcess,
    ShadowdeskProcess,
    agent_env,
    minio_store_env,
    wait_until,
)
from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.executor.elements import Accessibility
from session_agent.executor.protocol import ActionContext
from session_agent.executor.x11 import X11Desktop
from shadowdesk_common.desktop import VirtualDesktop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
log = logging.getLogger(__name__)

# How many new invoices the recorded macro is replayed on here (CI time); the benchmark runs >= 20.
REPLAY_INVOICES = 3
USER = f"mei-{uuid.uuid4().hex[:8]}"
SESSION = "mei-desk-1"
PORTAL_USER, PORTAL_PASSWORD = "alice", "expenses-2025"
COST_CENTRE = "CC-2040"
RECORDED = make_invoice(101, "en", "classic")
# New invoices: other values, every layout, both languages.
REPLAYED = [
    make_invoice(201, "en", "modern"),
    make_invoice(202, "zh", "fapiao"),
    make_invoice(203, "zh", "classic"),
    make_invoice(204, "en", "fapiao"),
    make_invoice(205, "zh", "modern"),
][:REPLAY_INVOICES]
CHROMIUM = pb.WindowRef(app_id="chromium")
OPTION_TEXT = dict(CATEGORIES)
# What a person types into each field (by its label's English part), read off the invoice.
FIELD_OF: dict[str, Callable[[Invoice], str]] = {
    "Vendor": lambda invoice: invoice.vendor,
    "Invoice number": lambda invoice: invoice.invoice_number,
    "Invoice date": lambda invoice: invoice.printed_date,
    "Amount (tax included)": lambda invoice: f"{invoice.amount:,.2f}",
    "Tax": lambda invoice: f"{invoice.tax:.2f}",
    "Category": lambda invoice: OPTION_TEXT[invoice.category],
}


def entry(name: str, role: str = "entry") -> pb.ElementRef:
    return pb.ElementRef(window=CHROMIUM, role=role, name=name)


@dataclass
class Desk:
    desktop: VirtualDesktop
    bus: SessionBus
    server: ServerProcess
    agent: ShadowdeskProcess
    portal: PortalServer
    home: Path
    chromium: subprocess.Popen[bytes] | None = None
    evince: subprocess.Popen[bytes] | None = None
    profiles: int = 0

    def api(self) -> httpx.Client:
        token = issue_token(TOKEN_SECRET, USER, ["read", "manage"], ttl_s=3600)
        return httpx.Client(
            base_url=self.server.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def open_invoice(self, invoice: Invoice, name: str) -> int:
        """The invoice in a new evince window (left open: each invoice has its own window)."""
        pdf = write_pdf(invoice, self.home / f"{name}.pdf")
        self.evince = self.desktop.launch(
            ["evince", str(pdf)], env={**self.bus.app_env, "XDG_CONFIG_HOME": str(self.home / "config")}
        )
        # evince titles the window "<file> — <the PDF's title>".
        return self.desktop.wait_for_window(f"{name}.pdf — Invoice {invoice.invoice_number}")

    def open_portal(self) -> int:
        """A fresh Chromium (a new profile: signed out) on the portal's new claim page → its sign-in."""
        if self.chromium is not None:
            self.desktop.kill(self.chromium)
        self.profiles += 1
        argv = chromium_argv(
            f"{self.portal.url}/claims/new",
            self.home / f"profile-{self.profiles}",
            "--force-renderer-accessibility",
        )
        self.chromium = self.desktop.launch(argv, env=self.bus.app_env)
        return self.desktop.wait_for_window("Sign in - Expense Portal - Chromium")

    def wait_page(self, title: str) -> int:
        """The portal's page ``title`` in Chromium; if it never comes, what the screen shows instead."""
        try:
            return self.desktop.wait_for_window(f"{title} - Expense Portal - Chromium", timeout_s=30)
        except Exception as exc:
            shot = self.home / f"screen-{time.monotonic_ns()}.png"
            from PIL import ImageGrab

            ImageGrab.grab(xdisplay=self.desktop.display).save(shot)
            active = subprocess.run(
                ["xdotool", "getactivewindow", "getwindowname"],
                env=self.desktop.env,
                capture_output=True,
                text=True,
            ).stdout
            raise AssertionError(f"no page {title!r}; active window {active!r}; screen {shot}") from exc

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.desktop.env, check=True, timeout=30)

    def click(self, ref: pb.ElementRef, timeout_s: float = 15) -> None:
        """Click where a person would: the element's centre (found through AT-SPI, the test's eyes)."""
        deadline = time.monotonic() + timeout_s
        while True:
            context = ActionContext("test", time.monotonic() + 5)
            try:
                with X11Desktop(self.desktop.display) as x11, Accessibility(self.bus.address) as a11y:
                    x, y = a11y.center(a11y.find(x11, ref, context), context)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        # A person's click: the button is held a moment (the app acts at the release).
        self.xdotool("mousemove", str(x), str(y))
        self.xdotool("mousedown", "1")
        time.sleep(0.25)
        self.xdotool("mouseup", "1")
        time.sleep(0.3)

    def value(self, ref: pb.ElementRef) -> str:
        context = ActionContext("test", time.monotonic() + 5)
        with X11Desktop(self.desktop.display) as x11, Accessibility(self.bus.address) as a11y:
            return a11y.text(a11y.find(x11, ref, context), context)

    def fill(self, ref: pb.ElementRef, text: str) -> None:
        """Click into the field and type ``text``; as a person who looks, type it again if it did not
        take (a page that was still settling)."""
        for _ in range(3):
            self.click(ref)
            self.xdotool("key", "ctrl+a")
            self.type(text)
            time.sleep(0.3)
            if self.value(ref) == text:
                return
        raise AssertionError(f"{ref.name!r} does not take {text!r}: it holds {self.value(ref)!r}")

    def type(self, text: str) -> None:
        self.xdotool("type", "--delay", "40", text)
        time.sleep(0.2)


@pytest.fixture(scope="module")
def desk(minio_server: MinioServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    home = tmp_path_factory.mktemp("expense")
    config = PortalConfig(database=home / "portal.sqlite3", users={PORTAL_USER: PORTAL_PASSWORD})
    server = ServerProcess(
        minio_store_env(minio_server.endpoint, minio_server.access_key, minio_server.secret_key),
        home / "server.log",
        recall_enabled="false",
    )
    server.start()
    try:
        with (
            PortalServer(config) as portal,
            VirtualDesktop(width=1280, height=900) as desktop,
            SessionBus(desktop.env) as bus,
        ):
            note = home / "cost-centre.txt"
            note.write_text(f"{COST_CENTRE}\n", encoding="utf-8")
            desktop.launch(
                ["mousepad", str(note)], env={**bus.app_env, "XDG_CONFIG_HOME": str(home / "config")}
            )
            desktop.wait_for_window(f"{note} - Mousepad")
            token = issue_token(TOKEN_SECRET, USER, "ingest", session_id=SESSION, ttl_s=7200)
            agent = ShadowdeskProcess(
                "agent",
                {
                    "DISPLAY": desktop.display,
                    **bus.app_env,
                    **agent_env(
                        server,
                        token,
                        USER,
                        SESSION,
                        home / "spool.sqlite3",
                        sensors="window_focus,accessibility",
                        flush_interval_s="0.1",
                    ),
                },
                home / "agent.log",
            )
            agent.start()
            try:
                yield Desk(desktop, bus, server, agent, portal, home)
            finally:
                agent.terminate()
    finally:
        server.terminate()


def claims(desk: Desk) -> list[Any]:
    database = PortalDatabase(desk.portal.config.database)
    try:
        return list(database.claims())
    finally:
        database.close()


def until_known(call: Any, timeout_s: float = 60) -> httpx.Response:
    """``call()`` until the agent's first stream made the session known (404 before)."""
    deadline = time.monotonic() + timeout_s
    while True:
        reply: httpx.Response = call()
        if reply.status_code != 404 or time.monotonic() > deadline:
            return reply
        time.sleep(0.3)


def logs(desk: Desk) -> str:
    return f"\nserver: {desk.server.log()[-4000:]}\nagent: {desk.agent.log()[-4000:]}"


@pytest.fixture(scope="module")
def macro(desk: Desk) -> dict[str, Any]:
    """Record the claim once, as a person does it; the stopped recording's compiled macro."""
    invoice = RECORDED
    evince = desk.open_invoice(invoice, "recorded-invoice")
    desk.open_portal()
    with desk.api() as api:
        started = until_known(lambda: api.post("/v1/workflows/recordings", json={"session_id": SESSION}))
        assert started.status_code == 200, started.text + logs(desk)
        recording_id = started.json()["recording_id"]

        def recording_on() -> bool:
            view = api.get(f"/v1/workflows/recordings/{recording_id}").json()
            assert view["status"] == "recording", view
            return bool(view["actions"])  # the agent's STARTED marker is in

        deadline = time.monotonic() + 30
        while not recording_on():
            assert time.monotonic() < deadline, "the agent never started recording" + logs(desk)
            time.sleep(0.3)
        # The person looks at the invoice, then signs in.
        desk.desktop.activate(evince)
        time.sleep(1.0)
        desk.desktop.activate(desk.wait_page("Sign in"))
        desk.fill(entry("User name / 用户名"), PORTAL_USER)
        desk.click(entry("Password / 密码", "password text"))
        desk.type(PORTAL_PASSWORD)
        desk.click(entry("Sign in / 登录", "push button"))
        desk.wait_page("Claim 1 of 3")
        time.sleep(1.5)
        # Page 1: what the invoice says.
        desk.fill(entry("Vendor / 供应商"), invoice.vendor)
        desk.fill(entry("Invoice number / 发票号码"), invoice.invoice_number)
        desk.fill(entry("Invoice date / 开票日期"), invoice.printed_date)
        desk.click(entry("Next / 下一步", "push button"))
        desk.wait_page("Claim 2 of 3")
        time.sleep(1.0)
        desk.fill(entry("Amount (tax included) / 金额（含税）"), FIELD_OF["Amount (tax included)"](invoice))
        desk.fill(entry("Tax / 税额"), f"{invoice.tax:.2f}")
        desk.click(entry("Category / 费用类别", "combo box"))
        time.sleep(0.8)  # the drop-down opens
        desk.click(entry(OPTION_TEXT[invoice.category], "menu item"))
        time.sleep(0.5)
        # The cost centre: copied from the note in mousepad (its first line), pasted into the form.
        desk.desktop.activate(desk.desktop.wait_for_window(f"{desk.home / 'cost-centre.txt'} - Mousepad"))
        time.sleep(0.5)
        desk.xdotool("key", "shift+End")  # the caret is at the start of the note
        desk.xdotool("key", "ctrl+c")
        time.sleep(0.6)
        desk.desktop.activate(desk.wait_page("Claim 2 of 3"))
        time.sleep(0.5)
        desk.click(entry("Cost centre / 成本中心"))
        desk.xdotool("key", "ctrl+v")
        time.sleep(0.3)
        desk.click(entry("Next / 下一步", "push button"))
        desk.wait_page("Review claim")
        time.sleep(1.0)
        desk.click(entry("Submit claim / 提交报销", "push button"))
        wait_until(lambda: claims(desk), 30, "the claim in the portal's database")
        (filed,) = claims(desk)
        desk.wait_page(f"Claim {filed.number} submitted")
        time.sleep(2.5)  # the person reads the claim number
        assert filed.fields() == {**invoice.expected_claim(), "cost_centre": COST_CENTRE}
        stopped = api.post(
            f"/v1/workflows/recordings/{recording_id}/stop", json={"name": "报销 expense claim"}
        )
        assert stopped.status_code == 200, stopped.text + logs(desk)
        view = api.get(f"/v1/workflows/recordings/{recording_id}").json()
        assert view["macro_id"] == stopped.json()["macro_id"], view
        result: dict[str, Any] = stopped.json()
        result["recorded_claim"] = filed.number
        return result


def steps_of(program: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for entry_ in program["steps"]:
        found.extend(entry_.get("steps", [entry_]) if "over" in entry_ else [entry_])
    return found


def test_the_recorded_claim_compiles_to_parameters_bindings_and_a_claim_number_check(
    macro: dict[str, Any],
) -> None:
    program = macro["program"]
    shown = macro["document"]
    steps = {step["id"]: step for step in steps_of(program)}
    params = {p["name"]: p for p in program.get("parameters", [])}
    # What the person typed: parameters named after the fields' labels, typed, the values as defaults.
    by_label = {p["label"].split(" / ")[0]: p for p in params.values()}
    assert set(by_label) == {"User name", "Password", *FIELD_OF}, shown
    for label, field in FIELD_OF.items():
        assert by_label[label].get("default") == field(RECORDED), (label, shown)
    assert [by_label[k]["type"] for k in ("Invoice date", "Amount (tax included)", "Tax", "Category")] == [
        "date",
        "money",
        "money",
        "choice",
    ], shown
    # The password: a secret without a value; its text (or its length in dots) is nowhere.
    assert by_label["Password"]["type"] == "secret" and "default" not in by_label["Password"], shown
    assert PORTAL_PASSWORD not in shown and "•" not in shown, shown
    # Every click names what a person clicked: sign in, next twice, submit.
    clicks = [s["target"]["name"] for s in steps.values() if s.get("action") == "click"]
    assert clicks == ["Sign in / 登录", "Next / 下一步", "Next / 下一步", "Submit claim / 提交报销"], shown
    # The copied cost centre: read fresh from mousepad each run, typed from that binding.
    reads = [s for s in steps.values() if s.get("action") == "read"]
    assert [r["target"]["window"]["app_id"] for r in reads] == ["mousepad"], shown
    (read,) = reads
    typed_from = [s for s in steps.values() if s.get("input") == {"binding": read["save_as"]}]
    assert len(typed_from) == 1 and typed_from[0]["target"]["id_attribute"] == "cost_centre", shown
    assert "Cost centre" not in {p["label"].split(" / ")[0] for p in params.values()}, shown
    # The drop-down is a select; the submit sensitive and checked by the claim number it shows.
    selects = [s for s in steps.values() if s.get("action") == "select"]
    assert len(selects) == 1 and selects[0]["input"] == {"param": by_label["Category"]["name"]}, shown
    sensitive = [s for s in steps.values() if s.get("sensitive")]
    assert len(sensitive) == 1 and "submit" in sensitive[0]["id"], shown
    (claim_check,) = [c for c in sensitive[0].get("checks", []) if c.get("save_as")]
    assert claim_check["kind"] == "text_in_window", shown
    final = program.get("final_checks", [])
    assert final and final[0]["equals"] == {"binding": claim_check["save_as"]}, shown


def wait_run(
    desk: Desk, api: httpx.Client, run_id: str, *statuses: str, timeout_s: float = 240
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        reply = None
        with contextlib.suppress(httpx.TransportError):
            reply = api.get(f"/v1/workflows/runs/{run_id}")
        if reply is not None and reply.status_code == 200:
            run: dict[str, Any] = reply.json()
            if run["status"] in statuses:
                return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} not {statuses}: {reply.text if reply else None}{logs(desk)}")
        time.sleep(0.3)


def show(run: dict[str, Any]) -> str:
    tries = [
        (
            s["step_id"],
            s["row"],
            s["outcome"],
            s["error"][:300],
            [(c["kind"], c["held"], c["actual"]) for c in s["checks"]],
        )
        for s in run.get("steps", [])
    ]
    return json.dumps(
        {"status": run["status"], "question": run["question"], "error": run["error"], "tries": tries},
        ensure_ascii=False,
    )


def parameters_for(invoice: Invoice, macro: dict[str, Any]) -> dict[str, str]:
    """The macro's parameters as the invoice gives them (the user name as recorded)."""
    params = {p["name"]: p for p in macro["program"].get("parameters", [])}
    values = {}
    for name, param in params.items():
        field = FIELD_OF.get(param["label"].split(" / ")[0])
        if field is not None:
            values[name] = field(invoice)
    for name, param in params.items():
        if name not in values and param.get("type") != "secret" and "default" in param:
            values[name] = param["default"]
    return values


def test_the_macro_files_each_new_invoice_exactly_once_and_exactly_right(
    desk: Desk, macro: dict[str, Any]
) -> None:
    secret = next(p["name"] for p in macro["program"]["parameters"] if p.get("type") == "secret")
    timings: list[float] = []
    with desk.api() as api:
        # The recording saw one category; the user lists the drop-down's others in the macro (a new
        # version, through the editor's PUT), as the compiled document invites.
        program = from_yaml(macro["document"])
        parameters = [
            p.model_copy(update={"choices": list(OPTION_TEXT.values())}) if p.type == "choice" else p
            for p in program.parameters
        ]
        program = program.model_copy(update={"parameters": parameters})
        edited = api.put(
            f"/v1/workflows/macros/{macro['macro_id']}",
            content=to_yaml(program).encode(),
            headers={"content-type": "application/yaml"},
        )
        assert edited.status_code == 200 and edited.json()["version"] == 2, edited.text
        for index, invoice in enumerate(REPLAYED):
            before = claims(desk)
            desk.open_invoice(invoice, f"invoice-{index}")
            desk.open_portal()
            began = time.monotonic()
            started = until_known(
                lambda invoice=invoice: api.post(
                    "/v1/workflows/runs",
                    json={
                        "macro_id": macro["macro_id"],
                        "session_id": SESSION,
                        "parameters": parameters_for(invoice, macro),
                        "secrets": {secret: PORTAL_PASSWORD},
                    },
                )
            )
            assert started.status_code == 200, started.text
            run_id = started.json()["run_id"]
            asked = wait_run(desk, api, run_id, "waiting", "failed", "aborted", "complete")
            assert asked["status"] == "waiting" and asked["question"]["kind"] == "confirm", show(asked)
            assert claims(desk) == before, "nothing is filed before the user confirms"
            reply = api.post(
                f"/v1/workflows/runs/{run_id}/answer",
                json={"decision": "confirm", "question_id": asked["question"]["question_id"]},
            )
            assert reply.status_code == 200, reply.text
            run = wait_run(desk, api, run_id, "complete", "failed", "aborted", "waiting")
            assert run["status"] == "complete", show(run)
            timings.append(time.monotonic() - began)
            after = claims(desk)
            new = [c for c in after if c.number not in {b.number for b in before}]
            assert len(new) == 1, [c.number for c in after]
            assert new[0].fields() == {**invoice.expected_claim(), "cost_centre": COST_CENTRE}, show(run)
            assert (
                run["bindings"].get(
                    next(
                        c["save_as"]
                        for s in steps_of(macro["program"])
                        for c in s.get("checks", [])
                        if c.get("kind") == "text_in_window" and c.get("save_as")
                    )
                )
                == new[0].number
            ), show(run)
        usage = api.get("/v1/llm/usage").json()
        assert (usage["requests"], usage["embedded_texts"]) == (0, 0), usage
    numbers = [c.number for c in claims(desk)]
    assert len(numbers) == len(set(numbers)) == 1 + len(REPLAYED)
    log.info(
        "replay seconds per invoice (start to complete, confirm included): %s", [round(t, 1) for t in timings]
    )
