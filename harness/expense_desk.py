"""The expense desk (报销 claims, 提报 weekly reports) for the workflow tests and the workflow benchmark.

``shadowdesk server`` over real MinIO, ``shadowdesk agent`` (recorder, executor, accessibility sensor) on
an Xvfb desktop with a session bus and AT-SPI, the expense portal (its own SQLite) in a Chromium with
``--force-renderer-accessibility``, each invoice PDF in evince, the cost centre in mousepad, weekly
notes in a mousepad window of their own (``open_notes``). A person is played with xdotool:
:func:`record_claim` is the demonstration, :func:`start_claim_run` one run of the compiled macro on a
new invoice through ``/v1/workflows/runs`` (the weekly report's are ``harness.weekly_report``; a run
followed to its end, ``harness.macro_run``).

A click holds the button a moment, as a hand does: the recorder hit-tests at the press, and an
instantaneous xdotool click lets Chromium navigate before it looks (then the next page's element is recorded).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cloud_infer.auth import issue_token
from demo_apps.expense_portal import PortalConfig, PortalDatabase, PortalServer, Report
from demo_apps.expense_portal.config import CATEGORIES
from demo_apps.invoices import Invoice, write_pdf
from harness.chromium import chromium_argv
from harness.dbus import SessionBus
from harness.minio import MinioServer
from harness.processes import (
    TOKEN_SECRET,
    ServerProcess,
    ShadowdeskProcess,
    desktop_agent,
    minio_store_env,
    wait_until,
)
from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.executor.elements import Accessibility
from session_agent.executor.protocol import ActionContext
from session_agent.executor.x11 import X11Desktop
from shadowdesk_common.desktop import VirtualDesktop

PORTAL_USER, PORTAL_PASSWORD = "alice", "expenses-2025"
COST_CENTRE = "CC-2040"
CHROMIUM = pb.WindowRef(app_id="chromium")
OPTION_TEXT = dict(CATEGORIES)
FINAL = ("complete", "failed", "aborted", "cancelled")
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
class ExpenseDesk:
    user: str
    session: str
    desktop: VirtualDesktop
    bus: SessionBus
    server: ServerProcess
    agent: ShadowdeskProcess
    portal: PortalServer
    home: Path
    chromium: subprocess.Popen[bytes] | None = None
    evince: subprocess.Popen[bytes] | None = None
    notes: subprocess.Popen[bytes] | None = None
    profiles: int = 0

    def api(self) -> httpx.Client:
        token = issue_token(TOKEN_SECRET, self.user, ["read", "manage"], ttl_s=3600)
        return httpx.Client(
            base_url=self.server.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def logs(self) -> str:
        return f"\nserver: {self.server.log()[-4000:]}\nagent: {self.agent.log()[-4000:]}"

    def claims(self) -> list[Any]:
        database = PortalDatabase(self.portal.config.database)
        try:
            return list(database.claims())
        finally:
            database.close()

    def reports(self) -> list[Report]:
        """The weekly reports filed in the portal, oldest first."""
        database = PortalDatabase(self.portal.config.database)
        try:
            return database.reports()
        finally:
            database.close()

    def open_notes(self, path: Path) -> int:
        """The text file ``path`` in a mousepad window of its own (its own process, not a tab of the
        cost-centre note's window), closing the notes opened before: the newest mousepad window is
        the notes a macro reads. The caret is at the start of the file."""
        if self.notes is not None:
            self.desktop.kill(self.notes)
        self.notes = self.desktop.launch(
            ["mousepad", "--disable-server", str(path)],
            env={**self.bus.app_env, "XDG_CONFIG_HOME": str(self.home / "config")},
        )
        return self.desktop.wait_for_window(f"{path} - Mousepad")

    def open_invoice(self, invoice: Invoice, name: str) -> int:
        """The invoice in a new evince window (left open: each invoice has its own window)."""
        pdf = write_pdf(invoice, self.home / f"{name}.pdf")
        self.evince = self.desktop.launch(
            ["evince", str(pdf)], env={**self.bus.app_env, "XDG_CONFIG_HOME": str(self.home / "config")}
        )
        # evince titles the window "<file> — <the PDF's title>".
        return self.desktop.wait_for_window(f"{name}.pdf — Invoice {invoice.invoice_number}")

    def open_portal(self, path: str = "/claims/new") -> int:
        """A fresh Chromium (a new profile: signed out) on the portal's ``path`` (the new claim page, or
        ``/reports/new``) → its sign-in."""
        if self.chromium is not None:
            self.desktop.kill(self.chromium)
        self.profiles += 1
        profile = self.home / f"profile-{self.profiles}"
        # No "Save password?" bubble after signing in: it takes the keyboard and covers the form's first
        # fields from the person's clicks (a person who turned password saving off).
        (profile / "Default").mkdir(parents=True, exist_ok=True)
        (profile / "Default" / "Preferences").write_text(
            json.dumps({"credentials_enable_service": False, "profile": {"password_manager_enabled": False}})
        )
        argv = chromium_argv(f"{self.portal.url}{path}", profile, "--force-renderer-accessibility")
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

    def clipboard(self) -> str:
        argv = ["xclip", "-o", "-selection", "clipboard", "-t", "UTF8_STRING"]
        reply = subprocess.run(argv, env=self.desktop.env, capture_output=True, timeout=10)
        return reply.stdout.decode(errors="replace") if reply.returncode == 0 else ""

    def copy_line(self, window: int, expected: str, keys: tuple[str, ...], tries: int = 3) -> None:
        """Select a line of the text editor ``window`` with ``keys`` and copy it, as a person does: they
        look that it was copied and copy again if not (a busy desktop can lose the window's focus or a
        key)."""
        for _ in range(tries):
            self.desktop.activate(window)
            time.sleep(0.5)
            for key in (*keys, "ctrl+c"):
                self.xdotool("key", key)
            try:
                wait_until(lambda: self.clipboard() == expected, 3, "the copied line on the clipboard")
                return
            except AssertionError:
                continue
        raise AssertionError(f"{expected!r} never reached the clipboard; it holds {self.clipboard()!r}")

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


@contextlib.contextmanager
def expense_desk(minio: MinioServer, home: Path, user: str, session: str) -> Iterator[ExpenseDesk]:
    """The server, the portal, the desktop with mousepad on the cost-centre note, and the agent."""
    config = PortalConfig(database=home / "portal.sqlite3", users={PORTAL_USER: PORTAL_PASSWORD})
    server = ServerProcess(
        minio_store_env(minio.endpoint, minio.access_key, minio.secret_key),
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
            agent = desktop_agent(
                desktop.display,
                bus.app_env,
                server,
                user,
                session,
                home,
                sensors="window_focus,accessibility",
                flush_interval_s="0.1",
            )
            try:
                yield ExpenseDesk(user, session, desktop, bus, server, agent, portal, home)
            finally:
                agent.terminate()
    finally:
        server.terminate()


def until_known(call: Callable[[], httpx.Response], timeout_s: float = 60) -> httpx.Response:
    """``call()`` until the agent's first stream made the session known (404 before)."""
    deadline = time.monotonic() + timeout_s
    while True:
        reply = call()
        if reply.status_code != 404 or time.monotonic() > deadline:
            return reply
        time.sleep(0.3)


def start_recording(desk: ExpenseDesk, api: httpx.Client) -> str:
    """Start recording the desk's session; its id, once the agent records."""
    started = until_known(lambda: api.post("/v1/workflows/recordings", json={"session_id": desk.session}))
    assert started.status_code == 200, started.text + desk.logs()
    recording_id: str = started.json()["recording_id"]

    def recording_on() -> bool:
        view = api.get(f"/v1/workflows/recordings/{recording_id}").json()
        assert view["status"] == "recording", view
        return bool(view["actions"])  # the agent's STARTED marker is in

    wait_until(recording_on, 30, "the agent to start recording" + desk.logs(), interval_s=0.3)
    return recording_id


def stop_recording(desk: ExpenseDesk, api: httpx.Client, recording_id: str, name: str) -> dict[str, Any]:
    """Stop the recording: the compiled macro (``macro_id``, ``version``, ``document``, ``program``)."""
    stopped = api.post(f"/v1/workflows/recordings/{recording_id}/stop", json={"name": name})
    assert stopped.status_code == 200, stopped.text + desk.logs()
    view = api.get(f"/v1/workflows/recordings/{recording_id}").json()
    assert view["macro_id"] == stopped.json()["macro_id"], view
    result: dict[str, Any] = stopped.json()
    return result


def sign_in(desk: ExpenseDesk, landing: str) -> None:
    """The person signs in on the portal's sign-in page and sees the page ``landing``."""
    desk.desktop.activate(desk.wait_page("Sign in"))
    desk.fill(entry("User name / 用户名"), PORTAL_USER)
    desk.click(entry("Password / 密码", "password text"))
    desk.type(PORTAL_PASSWORD)
    desk.click(entry("Sign in / 登录", "push button"))
    desk.wait_page(landing)


def record_claim(desk: ExpenseDesk, invoice: Invoice) -> dict[str, Any]:
    """Record the claim once, as a person does it: the stopped recording's compiled macro, with the
    claim it filed (``recorded_claim``) and the demonstration's wall time (``demonstration_s``)."""
    evince = desk.open_invoice(invoice, "recorded-invoice")
    desk.open_portal()
    with desk.api() as api:
        recording_id = start_recording(desk, api)
        began = time.monotonic()
        # The person looks at the invoice, then signs in.
        desk.desktop.activate(evince)
        time.sleep(1.0)
        sign_in(desk, "Claim 1 of 3")
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
        mousepad = desk.desktop.wait_for_window(f"{desk.home / 'cost-centre.txt'} - Mousepad")
        # Wherever mousepad left its caret: the note's first line.
        desk.copy_line(mousepad, COST_CENTRE, ("ctrl+Home", "shift+End"))
        desk.desktop.activate(desk.wait_page("Claim 2 of 3"))
        time.sleep(0.5)
        desk.click(entry("Cost centre / 成本中心"))
        desk.xdotool("key", "ctrl+v")
        time.sleep(0.3)
        desk.click(entry("Next / 下一步", "push button"))
        desk.wait_page("Review claim")
        time.sleep(1.0)
        desk.click(entry("Submit claim / 提交报销", "push button"))
        wait_until(desk.claims, 30, "the claim in the portal's database")
        (filed,) = desk.claims()
        desk.wait_page(f"Claim {filed.number} submitted")
        time.sleep(2.5)  # the person reads the claim number
        demonstration_s = time.monotonic() - began
        assert filed.fields() == {**invoice.expected_claim(), "cost_centre": COST_CENTRE}
        result = stop_recording(desk, api, recording_id, "报销 expense claim")
        result["recorded_claim"] = filed.number
        result["demonstration_s"] = demonstration_s
        return result


def steps_of(program: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of the program, loops flattened."""
    found: list[dict[str, Any]] = []
    for step in program["steps"]:
        found.extend(step.get("steps", [step]) if "over" in step else [step])
    return found


def claim_number_binding(program: dict[str, Any]) -> str:
    """The binding the submit's check saves the claim number the portal shows into."""
    return str(
        next(
            check["save_as"]
            for step in steps_of(program)
            for check in step.get("checks", [])
            if check.get("kind") == "text_in_window" and check.get("save_as")
        )
    )


def parameters_for(invoice: Invoice, program: dict[str, Any]) -> dict[str, str]:
    """The macro's parameters as the invoice gives them (the user name as recorded)."""
    params = {p["name"]: p for p in program.get("parameters", [])}
    values = {}
    for name, param in params.items():
        field = FIELD_OF.get(param["label"].split(" / ")[0])
        if field is not None:
            values[name] = field(invoice)
    for name, param in params.items():
        if name not in values and param.get("type") != "secret" and "default" in param:
            values[name] = param["default"]
    return values


def start_claim_run(desk: ExpenseDesk, api: httpx.Client, macro: dict[str, Any], invoice: Invoice) -> str:
    """Start the macro on ``invoice`` (the password as the run's secret); the run's id."""
    secret = next(p["name"] for p in macro["program"]["parameters"] if p.get("type") == "secret")
    started = until_known(
        lambda: api.post(
            "/v1/workflows/runs",
            json={
                "macro_id": macro["macro_id"],
                "session_id": desk.session,
                "parameters": parameters_for(invoice, macro["program"]),
                "secrets": {secret: PORTAL_PASSWORD},
            },
        )
    )
    assert started.status_code == 200, started.text
    run_id: str = started.json()["run_id"]
    return run_id


def wait_run(
    desk: ExpenseDesk, api: httpx.Client, run_id: str, *statuses: str, timeout_s: float = 240
) -> dict[str, Any]:
    """The run once its status is one of ``statuses`` (a server being restarted is waited out)."""
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
            raise AssertionError(f"run {run_id} not {statuses}: {reply.text if reply else None}{desk.logs()}")
        time.sleep(0.3)


def answer(api: httpx.Client, run: dict[str, Any], decision: str) -> None:
    reply = api.post(
        f"/v1/workflows/runs/{run['run_id']}/answer",
        json={"decision": decision, "question_id": run["question"]["question_id"]},
    )
    assert reply.status_code == 200, reply.text


def show(run: dict[str, Any]) -> str:
    """A run's status, question and tries, short enough for an assertion message."""
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
