"""The sidebar's Macros tab in a real headless Chromium, against the real server and a real gRPC agent.

The agent is scripted (tests/support/macro_desk.py): it answers the recording commands with a recorded
报销 demonstration and the runner's WorkflowStep commands from a small model of a claim form. Through
the page a user records a macro and stops it, edits a step and a parameter, saves a new version, sees
a broken document's problems beside the step and the field they are about, deletes the macro, and runs
one: a parameter form with a secret, live progress with frames, a halt answered by taking over, a
sensitive step confirmed, an abort, and the run history with each run's trace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Locator, Page, expect

from cloud_infer.workflows.program import from_yaml
from harness.processes import ServerProcess, wait_until
from tests.support.macro_desk import Desk, DeskThread
from tests.support.sidebar_page import (
    UI_TIMEOUT_MS,
    Sidebar,
    api_get,
    login_ticket,
    manage_token,
    sidebar_url,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RUN_TIMEOUT_MS = 45_000
BLOB = re.compile(r"^blob:")
RECORDED_NAME = "报销 <b>expense</b> claim"
SECRET = "hunter2-Pa55"
FORM = {"app_id": "chromium", "title_contains": "Claim"}


def target(name: str, role: str = "entry") -> dict[str, Any]:
    return {"window": FORM, "role": role, "name": name}


def field_check(name: str, param: str) -> dict[str, Any]:
    return {"kind": "field_value", "target": target(name), "equals": {"param": param}}


RUN_PROGRAM: dict[str, Any] = {
    "version": 1,
    "name": "报销 claim",
    "parameters": [
        {"name": "vendor", "label": "供应商 Vendor"},
        {"name": "amount", "type": "money", "label": "Amount", "default": "12.50"},
        {"name": "password", "type": "secret", "label": "Portal password"},
    ],
    "steps": [
        {
            "id": "sign_in",
            "name": "登录 Sign in",
            "action": "type",
            "target": target("Password", "password text"),
            "input": {"param": "password"},
        },
        {
            "id": "type_vendor",
            "name": "填写供应商",
            "action": "type",
            "target": target("Vendor"),
            "input": {"param": "vendor"},
            "checks": [field_check("Vendor", "vendor")],
        },
        {
            "id": "type_amount",
            "name": "Enter amount",
            "action": "type",
            "target": target("Amount"),
            "input": {"param": "amount"},
            "checks": [field_check("Amount", "amount")],
        },
        {
            "id": "submit",
            "name": "Submit claim",
            "action": "click",
            "target": target("Submit", "push button"),
            "sensitive": True,
            "checks": [
                {"kind": "text_in_window", "window": FORM, "pattern": "CLM-[0-9]+", "save_as": "claim"}
            ],
        },
    ],
    "final_checks": [{"kind": "text_in_window", "window": FORM, "pattern": "CLM-[0-9]+"}],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("macros")
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(root / "store")}
    process = ServerProcess(
        store,
        root / "server.log",
        llm_backend="none",
        runner_backoff_base_s="0.05",
        runner_backoff_max_s="0.2",
    )
    process.start()
    yield process
    process.terminate()


@pytest.fixture
def sidebar(browser: Browser, server: ServerProcess) -> Iterator[Sidebar]:
    context = browser.new_context(viewport={"width": 380, "height": 900}, locale="en-US")
    try:
        yield Sidebar(context.new_page(), server)
    finally:
        context.close()


@pytest.fixture
def desks(server: ServerProcess) -> Iterator[Callable[[str, str], DeskThread]]:
    """Connect a scripted agent for (user, session); every one is closed after the test."""
    started: list[DeskThread] = []

    def connect(user: str, session: str) -> DeskThread:
        desk = DeskThread(server, user, session)
        started.append(desk)
        desk.start()
        return desk

    yield connect
    for desk in started:
        failure = desk.failure()
        desk.close()
        assert failure is None, f"the scripted agent stopped: {failure!r}"


def put_macro(server: ServerProcess, user: str, macro_id: str, program: dict[str, Any]) -> dict[str, Any]:
    reply = httpx.put(
        f"{server.http_url}/v1/workflows/macros/{macro_id}",
        content=json.dumps(program, ensure_ascii=False).encode(),  # JSON is YAML, with no anchors
        headers={"Authorization": f"Bearer {manage_token(user)}", "Content-Type": "application/yaml"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def step_item(page: Page, step_id: str) -> Locator:
    return page.locator(f'[data-testid="run-step"][data-step-id="{step_id}"]')


def test_record_edit_break_and_delete_a_macro(
    sidebar: Sidebar, server: ServerProcess, desks: Callable[[str, str], DeskThread], tmp_path: Path
) -> None:
    user, session = "macro-alice", "alice-desk"
    desk = desks(user, session)
    page = sidebar.page
    sidebar.open(user)
    sidebar.tab("Macros")
    # The connected desktop is chosen; nothing recorded yet.
    desktop = page.get_by_label("Desktop", exact=True)
    expect(desktop).to_have_value(session)
    expect(desktop.locator("option")).to_have_text([f"{session} (connected)"])
    expect(page.get_by_test_id("macro-list-empty")).to_be_visible()

    # Record: a banner with the elapsed time, on every tab, while the agent records.
    page.get_by_label("Name of the new macro (optional)").fill(RECORDED_NAME)
    page.get_by_role("button", name="Record", exact=True).click()
    banner = page.get_by_test_id("recording-banner")
    expect(banner).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("recording-text")).to_contain_text(f"Recording on {session}")
    expect(page.get_by_role("button", name="Record", exact=True)).to_be_disabled()
    wait_until(lambda: desk.desk.recorded > 0, 30, "the demonstration reported")
    expect(page.get_by_test_id("recording-text")).to_have_text(
        f"Recording on {session} · {desk.desk.recorded} actions", timeout=UI_TIMEOUT_MS
    )
    clock = page.get_by_test_id("recording-elapsed")
    expect(clock).to_have_text(re.compile(r"^\d+:\d\d$"))
    expect(clock).not_to_have_text(clock.text_content() or "", timeout=5_000)  # it ticks
    sidebar.tab("Search")
    expect(banner).to_be_visible()
    page.screenshot(path=str(tmp_path / "sidebar-recording.png"), full_page=True)
    # A reload (this tab's sign-in and recording are kept) brings the banner back.
    page.reload()
    expect(banner).to_be_visible(timeout=UI_TIMEOUT_MS)

    # Stop: the agent stops, the recording compiles, the new macro is shown.
    page.get_by_role("button", name="Stop recording").click()
    expect(banner).to_be_hidden(timeout=60_000)
    expect(page.get_by_role("tab", name="Macros")).to_have_attribute("aria-selected", "true")
    title = page.get_by_test_id("macro-title")
    expect(title).to_have_text(RECORDED_NAME)
    assert page.locator("#panel-macros b").count() == 0  # a name is text, never markup
    meta = page.get_by_test_id("macro-meta")
    expect(meta).to_have_attribute("data-version", "1")
    steps = page.get_by_test_id("macro-step")
    expect(steps).to_have_count(13)
    expect(steps.nth(0).get_by_test_id("step-name")).to_have_value("Focus Expense Portal")
    expect(steps.nth(0).get_by_test_id("step-what")).to_have_text(re.compile("^Switch to chromium"))
    expect(steps.nth(0).get_by_test_id("step-thumb")).to_have_attribute("src", BLOB, timeout=UI_TIMEOUT_MS)
    expect(steps.nth(12).get_by_test_id("step-sensitive")).to_have_text("Asks you first")
    params = page.get_by_test_id("macro-param")
    expect(params).to_have_count(6)
    expect(params.nth(1).get_by_label("Type")).to_have_value("secret")
    expect(params.nth(1).get_by_label("Default")).to_be_disabled()  # a secret has no default
    (macro,) = api_get(server, user, "/v1/workflows/macros")
    macro_id = macro["macro_id"]
    assert macro["name"] == RECORDED_NAME

    # Edit a step's name and a parameter (renamed: its uses follow), save: version 2.
    steps.nth(0).get_by_test_id("step-name").fill("打开报销门户")
    vendor = params.nth(3)
    expect(vendor.get_by_label("Name")).to_have_value("vendor")
    vendor.get_by_label("Name").fill("supplier")
    vendor.get_by_label("Label").fill("供应商 Supplier")
    vendor.get_by_label("Default").fill('上海出租车公司: "Taxi" #1')
    page.get_by_text("Document (YAML)", exact=True).click()
    expect(page.get_by_test_id("macro-document")).to_have_value(re.compile(r"param: supplier"))
    page.get_by_role("button", name="Save as a new version").click()
    expect(meta).to_have_attribute("data-version", "2", timeout=UI_TIMEOUT_MS)
    expect(meta).to_have_text("Version 2 · 2 versions saved")
    saved = api_get(server, user, f"/v1/workflows/macros/{macro_id}")
    assert saved["versions"] == [1, 2]
    program = saved["program"]
    assert program["steps"][0]["name"] == "打开报销门户"
    assert "打开报销门户" in saved["document"]  # readable, not escaped
    assert program["parameters"][3] == {
        "name": "supplier",
        "label": "供应商 Supplier",
        "default": '上海出租车公司: "Taxi" #1',
    }
    assert {"param": "vendor"} not in _inputs(program)
    assert {"param": "supplier"} in _inputs(program)
    before = api_get(server, user, f"/v1/workflows/macros/{macro_id}", version="1")
    from_yaml(before["document"])  # the first version is kept as it was
    assert before["program"]["steps"][0]["name"] == "Focus Expense Portal"

    # Break the document: each problem is shown beside its step or field, and nothing is saved.
    document = page.get_by_test_id("macro-document")
    broken = yaml.safe_load(document.input_value())
    broken["steps"][7]["timeout_s"] = -1
    broken["parameters"][0]["name"] = "User Name"
    document.fill(yaml.safe_dump(broken, allow_unicode=True, sort_keys=False))
    expect(page.get_by_test_id("macro-form-locked")).to_be_visible()
    expect(steps.nth(0).get_by_test_id("step-name")).to_be_disabled()
    page.get_by_role("button", name="Save as a new version").click()
    step_errors = steps.nth(7).get_by_test_id("macro-error")
    expect(step_errors).to_have_text(["timeout_s: Input should be greater than 0"], timeout=UI_TIMEOUT_MS)
    expect(page.locator('[data-testid="step-errors"]:visible')).to_have_count(1)
    name_field = params.nth(0).get_by_label("Name")
    expect(name_field).to_have_attribute("aria-invalid", "true")
    expect(params.nth(0).get_by_test_id("param-errors").first).to_contain_text("should match pattern")
    expect(page.get_by_test_id("macro-errors")).to_contain_text("Not saved: 2 problems in the document.")
    expect(meta).to_have_attribute("data-version", "2")
    document.fill("name: [unclosed")
    page.get_by_role("button", name="Save as a new version").click()
    expect(page.get_by_test_id("macro-document-errors")).to_contain_text("line 1", timeout=UI_TIMEOUT_MS)
    expect(page.locator('[data-testid="step-errors"]:visible')).to_have_count(0)
    page.screenshot(path=str(tmp_path / "sidebar-macro-errors.png"), full_page=True)
    page.get_by_role("button", name="Revert to the saved version").click()
    expect(document).to_have_value(saved["document"])
    expect(steps.nth(0).get_by_test_id("step-name")).to_be_enabled()
    assert api_get(server, user, f"/v1/workflows/macros/{macro_id}")["version"] == 2

    # Delete: asked first; cancelling keeps it.
    page.get_by_role("button", name="Delete macro").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    expect(page.get_by_test_id("confirm-message")).to_contain_text(f"“{RECORDED_NAME}” and its 2 versions")
    page.get_by_test_id("confirm-cancel").click()
    expect(title).to_be_visible()
    page.get_by_role("button", name="Delete macro").click()
    page.get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("macro-list-empty")).to_be_visible(timeout=UI_TIMEOUT_MS)
    assert api_get(server, user, "/v1/workflows/macros") == []
    # Chromium reports the refused saves (400) on the console; nothing else went wrong.
    assert [e for e in sidebar.errors if "400" not in e] == []


def _inputs(program: dict[str, Any]) -> list[dict[str, Any]]:
    return [step["input"] for step in program["steps"] if "input" in step]


def test_run_a_macro_halt_take_over_confirm_abort_and_history(
    sidebar: Sidebar, server: ServerProcess, desks: Callable[[str, str], DeskThread], tmp_path: Path
) -> None:
    user, session = "macro-bob", "bob-desk"
    desk = desks(user, session)
    put_macro(server, user, "claim-run", RUN_PROGRAM)
    desk.edit(lambda d: d.missing.add("Amount"))  # the form is not ready: the amount field never appears
    page = sidebar.page
    sidebar.open(user)
    sidebar.tab("Macros")
    page.get_by_test_id("macro-open").click()
    expect(page.get_by_test_id("macro-title")).to_have_text("报销 claim")
    page.get_by_role("tab", name="Run", exact=True).click()

    # The form: labels, defaults, a secret as a password input.
    vendor = page.get_by_label("供应商 Vendor")
    vendor.fill("上海出租车 <i>Taxi</i>")
    expect(page.get_by_label("Amount (money)")).to_have_value("12.50")
    password = page.get_by_label("Portal password (secret, never stored)")
    expect(password).to_have_attribute("type", "password")
    password.fill(SECRET)
    page.get_by_role("button", name="Run on this desktop").click()
    expect(password).to_have_value("")  # the request took it; the page keeps nothing

    # Progress step by step; the run halts where the target never appears and asks.
    status = page.get_by_test_id("run-status")
    question = page.get_by_test_id("run-question")
    expect(question).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(question).to_have_attribute("data-kind", "halt")
    expect(page.get_by_test_id("run-question-text")).to_contain_text("“Enter amount” stopped")
    expect(status).to_have_text("Waiting for you")
    expect(step_item(page, "sign_in").get_by_test_id("run-step-status")).to_have_text("Done")
    vendor_step = step_item(page, "type_vendor")
    expect(vendor_step.get_by_test_id("run-step-name")).to_have_text("填写供应商")
    expect(vendor_step.get_by_test_id("run-step-check")).to_have_text(["✓ field value via accessibility"])
    expect(vendor_step.get_by_test_id("run-frame-after")).to_have_attribute(
        "src", BLOB, timeout=UI_TIMEOUT_MS
    )
    expect(step_item(page, "type_amount").get_by_test_id("run-step-status")).to_have_text("Waiting for you")
    expect(step_item(page, "submit").get_by_test_id("run-step-status")).to_have_text("Pending")
    expect(question.get_by_role("button")).to_have_text(["Retry", "Skip", "Take over", "Abort run"])
    page.screenshot(path=str(tmp_path / "sidebar-run-halt.png"), full_page=True)

    # The user types the amount by hand and takes over: its check is read back, the run goes on to
    # the sensitive submit, which waits for a confirmation before it acts.
    def typed_by_hand(d: Desk) -> None:
        d.missing.discard("Amount")
        d.fields["Amount"] = "12.50"

    desk.edit(typed_by_hand)
    question.get_by_role("button", name="Take over").click()
    expect(page.get_by_test_id("run-question-text")).to_contain_text(
        "Confirm “Submit claim” before it acts", timeout=RUN_TIMEOUT_MS
    )
    expect(question).to_have_attribute("data-kind", "confirm")
    expect(step_item(page, "type_amount").get_by_test_id("run-step-status")).to_have_text("Done by you")
    assert desk.desk.submissions == 0
    question.get_by_role("button", name="Confirm").click()
    expect(status).to_have_text(re.compile("^Complete"), timeout=RUN_TIMEOUT_MS)
    expect(question).to_be_hidden()
    expect(step_item(page, "submit").get_by_test_id("run-step-status")).to_have_text("Done")
    expect(step_item(page, "final_checks").get_by_test_id("run-step-status")).to_have_text("Done")
    expect(page.get_by_test_id("run-cancel")).to_be_hidden()
    assert desk.desk.submissions == 1 and desk.desk.fields["Vendor"] == "上海出租车 <i>Taxi</i>"
    assert desk.desk.frames > 0
    assert page.locator("#panel-macros i").count() == 0
    page.screenshot(path=str(tmp_path / "sidebar-run-complete.png"), full_page=True)

    # A second run halts at the vendor; the user aborts it.
    desk.edit(lambda d: d.missing.add("Vendor"))
    password.fill(SECRET)
    page.get_by_role("button", name="Run on this desktop").click()
    expect(page.get_by_test_id("run-question-text")).to_contain_text(
        "“填写供应商” stopped", timeout=RUN_TIMEOUT_MS
    )
    question.get_by_role("button", name="Abort run").click()
    expect(status).to_have_text(
        re.compile("^Aborted: aborted by the user at type_vendor"), timeout=RUN_TIMEOUT_MS
    )
    assert desk.desk.submissions == 1

    # History: both runs, newest first; a run opens with its trace.
    page.get_by_role("tab", name="History").click()
    expect(page.get_by_test_id("run-history-status")).to_have_text(
        [re.compile("^Aborted"), re.compile("^Complete")], timeout=UI_TIMEOUT_MS
    )
    page.get_by_test_id("run-history-open").nth(1).click()
    expect(page.get_by_role("tab", name="Run", exact=True)).to_have_attribute("aria-selected", "true")
    expect(status).to_have_text(re.compile("^Complete"))
    expect(step_item(page, "type_amount").get_by_test_id("run-step-status")).to_have_text("Done by you")
    expect(step_item(page, "sign_in").get_by_test_id("run-frame-after")).to_have_attribute("src", BLOB)

    # The secret was in one request only: not on the page, not in the runs the server keeps.
    assert SECRET not in page.content()
    runs = api_get(server, user, "/v1/workflows/runs")["runs"]
    assert len(runs) == 2
    assert all(
        SECRET not in json.dumps(api_get(server, user, f"/v1/workflows/runs/{r['run_id']}")) for r in runs
    )
    assert sidebar.errors == []


def test_read_only_sign_in_sees_macros_but_cannot_record_save_or_run(
    sidebar: Sidebar, server: ServerProcess, desks: Callable[[str, str], DeskThread]
) -> None:
    user, session = "macro-carol", "carol-desk"
    desks(user, session)
    put_macro(server, user, "weekly", {**RUN_PROGRAM, "name": "提报 weekly report"})
    page = sidebar.page
    # The link names the desktop it was opened from (one whose agent has not connected yet).
    page.goto(f"{sidebar_url(server, login_ticket(user, manage=False))}&desktop=carol-laptop")
    expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=UI_TIMEOUT_MS)
    sidebar.tab("Macros")
    desktop = page.get_by_label("Desktop", exact=True)
    expect(desktop).to_have_value("carol-laptop")
    expect(desktop.locator("option")).to_have_text(["carol-laptop (not seen yet)", f"{session} (connected)"])
    expect(page.get_by_test_id("macros-read-only")).to_be_visible()
    expect(page.get_by_role("button", name="Record", exact=True)).to_be_disabled()
    expect(page.get_by_test_id("macro-name")).to_have_text(["提报 weekly report"], timeout=UI_TIMEOUT_MS)
    page.get_by_test_id("macro-open").click()
    expect(page.get_by_role("button", name="Save as a new version")).to_be_disabled()
    expect(page.get_by_role("button", name="Delete macro")).to_be_disabled()
    # The macro's sections are tabs the keyboard moves through.
    page.get_by_role("tab", name="Edit", exact=True).focus()
    page.keyboard.press("ArrowRight")
    run_tab = page.get_by_role("tab", name="Run", exact=True)
    expect(run_tab).to_be_focused()
    expect(run_tab).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("button", name="Run on this desktop")).to_be_disabled()
    assert sidebar.errors == []


TRICKY = [
    "plain words",
    "报销 expense claim",
    "yes",
    "No",
    "null",
    "~",
    "12.50",
    "2026-03-01",
    "a: b",
    "# not a comment",
    "trailing space ",
    " leading space",
    "line one\nline two",
    'quote " and \\ backslash',
    "tab\there",
    "separator\u2028inside",
    "bom\ufeffinside",
    "emoji 😀",
    "- dash",
    "{braces}",
    "",
]


def test_the_pages_yaml_writer_round_trips_through_the_servers_reader(
    sidebar: Sidebar, server: ServerProcess
) -> None:
    """What the form writes is read back by the server's YAML parser exactly as it was."""
    page = sidebar.page
    sidebar.open("macro-dave")
    program = {
        "name": "往返 round trip",
        "description": "\n".join(TRICKY),
        "parameters": [{"name": f"p{i}", "label": text, "default": text} for i, text in enumerate(TRICKY)],
        "steps": [
            {"id": "focus_it", "action": "focus", "window": {"app_id": "mousepad"}, "timeout_s": 2.5},
            {
                "id": "press_it",
                "action": "press",
                "keys": "ctrl+s",
                "args": [],
                "retries": 0,
                "sensitive": True,
            },
        ],
    }
    written = page.evaluate(
        "async (program) => (await import('/sidebar/static/macro_yaml.js')).programYaml(program)", program
    )
    assert yaml.safe_load(written) == {"version": 1, **program}
    assert "报销 expense claim" in written  # plain where it is safe
    assert sidebar.errors == []
