"""The expense portal in a real Chromium on a real Xvfb desktop, driven by Playwright, read through AT-SPI.

A person's whole claim (sign in, both pages, the category drop-down, a generated invoice PDF uploaded,
review, submit, the claim number), a second submit refused, the modal notice fault, the weekly report
(items added one at a time, then submitted), and what the accessibility tree shows of the form (each
input's label as its name, its id).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from demo_apps.expense_portal import Faults, PortalDatabase, PortalServer
from demo_apps.invoices import Invoice, make_invoice, write_pdf
from harness.chromium import chromium_argv
from harness.dbus import SessionBus
from harness.processes import wait_until
from session_agent.sensors.accessibility import AtspiClient
from shadowdesk_common.desktop import VirtualDesktop
from tests.support.a11y import nodes, window_frame
from tests.support.portal import PASSWORD, USER

pytestmark = pytest.mark.e2e
UI_TIMEOUT_MS = 20_000
ROLE_ENTRY, ROLE_PASSWORD_TEXT, ROLE_COMBO_BOX = 79, 40, 11


@pytest.fixture(scope="module")
def a11y_desktop() -> Iterator[tuple[VirtualDesktop, SessionBus]]:
    with VirtualDesktop(width=1280, height=900) as desktop, SessionBus(desktop.env) as bus:
        yield desktop, bus


@pytest.fixture(scope="module")
def browser(
    a11y_desktop: tuple[VirtualDesktop, SessionBus], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    """A headed Chromium on the Xvfb desktop, on its AT-SPI bus, with the test Chromium's flags."""
    desktop, bus = a11y_desktop
    argv = chromium_argv("about:blank", tmp_path_factory.mktemp("profile"), "--force-renderer-accessibility")
    flags = [arg for arg in argv[1:-1] if not arg.startswith("--user-data-dir=")]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=argv[0], args=flags, headless=False, env={**desktop.env, **bus.app_env}
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, portal: PortalServer) -> Iterator[Page]:
    context = browser.new_context(base_url=portal.url, viewport={"width": 1200, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(UI_TIMEOUT_MS)
    yield opened
    context.close()


def sign_in(page: Page) -> None:
    page.goto("/claims/new")
    expect(page).to_have_title("Sign in - Expense Portal")
    page.get_by_label("User name / 用户名").fill(USER)
    page.get_by_label("Password / 密码").fill(PASSWORD)
    page.get_by_role("button", name="Sign in / 登录").click()
    expect(page).to_have_title("Claim 1 of 3 - Expense Portal")


def file_claim(page: Page, invoice: Invoice, attachment: Path, cost_centre: str) -> str:
    """Fill both pages from ``invoice`` as a person reads it, review, submit; returns the claim number."""
    page.get_by_label("Vendor / 供应商").fill(invoice.vendor)
    page.get_by_label("Invoice number / 发票号码").fill(invoice.invoice_number)
    page.get_by_label("Invoice date / 开票日期").fill(invoice.printed_date)
    page.get_by_role("button", name="Next / 下一步").click()
    expect(page).to_have_title("Claim 2 of 3 - Expense Portal")
    page.get_by_label("Amount (tax included) / 金额（含税）").fill(f"{invoice.amount:,.2f}")
    page.get_by_label("Tax / 税额").fill(f"{invoice.tax:.2f}")
    page.get_by_label("Category / 费用类别").select_option(invoice.category)
    page.get_by_label("Cost centre / 成本中心").fill(cost_centre)
    page.get_by_label("Invoice attachment / 发票附件").set_input_files(attachment)
    page.get_by_role("button", name="Next / 下一步").click()
    expect(page).to_have_title("Review claim - Expense Portal")
    expect(page.locator("#review-vendor")).to_have_text(invoice.vendor)
    expect(page.locator("#review-attachment")).to_have_text(attachment.name)
    page.get_by_role("button", name="Submit claim / 提交报销").click()
    number = page.locator("#claim-number")
    expect(number).to_have_text(re.compile(r"^EXP-\d{6}$"))
    return number.inner_text()


@pytest.mark.parametrize(("seed", "language", "layout"), [(11, "en", "modern"), (12, "zh", "fapiao")])
def test_a_claim_filed_in_chromium_is_exactly_what_the_invoice_says(
    page: Page, portal: PortalServer, tmp_path: Path, seed: int, language: str, layout: str
) -> None:
    invoice = make_invoice(seed, language, layout)  # type: ignore[arg-type]
    pdf = write_pdf(invoice, tmp_path / f"invoice-{language}.pdf")
    sign_in(page)
    number = file_claim(page, invoice, pdf, "CC-2040")
    expect(page).to_have_title(f"Claim {number} submitted - Expense Portal")
    database = PortalDatabase(portal.config.database)
    try:
        (claim,) = database.claims()
    finally:
        database.close()
    assert claim.number == number and claim.user == USER
    assert claim.fields() == {**invoice.expected_claim(), "cost_centre": "CC-2040"}
    data = pdf.read_bytes()
    assert (claim.attachment_name, claim.attachment_size) == (pdf.name, len(data))
    assert claim.attachment_sha256 == hashlib.sha256(data).hexdigest()


def test_submitting_the_same_form_again_is_refused(page: Page, portal: PortalServer, tmp_path: Path) -> None:
    invoice = make_invoice(21, "en", "classic")
    sign_in(page)
    number = file_claim(page, invoice, write_pdf(invoice, tmp_path / "invoice.pdf"), "CC-1")
    page.go_back()  # the review page again, as a person pressing Back would
    expect(page).to_have_title("Review claim - Expense Portal")
    page.get_by_role("button", name="Submit claim / 提交报销").click()
    expect(page.locator("#already-submitted")).to_contain_text(number)
    database = PortalDatabase(portal.config.database)
    try:
        assert [claim.number for claim in database.claims()] == [number]
    finally:
        database.close()


def test_modal_notice_must_be_dismissed_before_the_form_takes_input(page: Page, portal: PortalServer) -> None:
    portal.set_faults(Faults(modal=True))
    sign_in(page)
    dialog = page.get_by_role("dialog", name="Notice / 通知")
    expect(dialog).to_be_visible()
    vendor = page.locator("#vendor")
    box = vendor.bounding_box()
    assert box is not None
    # A person clicking into the field and typing: the modal keeps the page inert.
    page.mouse.click(box["x"] + 10, box["y"] + box["height"] / 2)
    page.keyboard.type("Typed behind the modal")
    expect(vendor).to_have_value("")
    page.get_by_role("button", name="OK / 确定").click()
    expect(dialog).to_be_hidden()
    page.mouse.click(box["x"] + 10, box["y"] + box["height"] / 2)
    page.keyboard.type("Northwind")
    expect(vendor).to_have_value("Northwind")


def test_weekly_report_from_chromium(page: Page, portal: PortalServer) -> None:
    sign_in(page)
    page.get_by_role("link", name="Weekly report / 周报提报").click()
    expect(page).to_have_title("Weekly report - Expense Portal")
    page.get_by_label("Week / 周次").fill("2025-W23")
    lines = ["完成第三季度预算审核", "Reviewed 12 expense claims", "与华信公司沟通续约事宜"]
    for count, line in enumerate(lines, start=1):
        page.get_by_label("Item / 事项").fill(line)
        page.get_by_role("button", name="Add item / 添加一项").click()
        # The page comes back listing the items so far, the week kept, the item field empty.
        expect(page.locator("#report-items li")).to_have_text(lines[:count])
        expect(page.get_by_label("Week / 周次")).to_have_value("2025-W23")
        expect(page.get_by_label("Item / 事项")).to_have_value("")
    # Enter in the item field adds it (Add item is the form's first button), it never submits.
    page.get_by_label("Item / 事项").fill("整理本周报销单据")
    page.get_by_label("Item / 事项").press("Enter")
    lines.append("整理本周报销单据")
    expect(page.locator("#report-items li")).to_have_text(lines)
    page.get_by_role("button", name="Submit report / 提交周报").click()
    expect(page.locator("#report-number")).to_have_text("WR-000001")
    expect(page.locator("#report-lines li")).to_have_text(lines)
    database = PortalDatabase(portal.config.database)
    try:
        (report,) = database.reports()
    finally:
        database.close()
    assert (report.week, list(report.lines)) == ("2025-W23", lines)


def test_form_inputs_have_their_label_as_name_and_their_id_in_atspi(
    page: Page, a11y_desktop: tuple[VirtualDesktop, SessionBus]
) -> None:
    desktop, bus = a11y_desktop
    sign_in(page)
    page.get_by_label("Vendor / 供应商").fill("Northwind")
    page.get_by_label("Invoice number / 发票号码").fill("INV-1")
    page.get_by_label("Invoice date / 开票日期").fill("2025-03-04")
    page.get_by_role("button", name="Next / 下一步").click()
    expect(page).to_have_title("Claim 2 of 3 - Expense Portal")
    window = desktop.wait_for_window("Claim 2 of 3 - Expense Portal - Chromium")
    client = AtspiClient.connect(bus.address)
    try:
        found: dict[str, tuple[int, str]] = {}

        def inputs_in_tree() -> bool:
            frame = window_frame(client, desktop, window)
            if frame is not None:
                for node in nodes(client, frame):
                    if "id" in node.attributes:
                        found[node.attributes["id"]] = (node.role, node.name)
            return {"amount", "tax", "category", "cost_centre"} <= found.keys()

        wait_until(inputs_in_tree, 30, "the form's inputs in the AT-SPI tree")
    finally:
        client.close()
    assert found["amount"] == (ROLE_ENTRY, "Amount (tax included) / 金额（含税）")
    assert found["tax"] == (ROLE_ENTRY, "Tax / 税额")
    assert found["category"] == (ROLE_COMBO_BOX, "Category / 费用类别")
    assert found["cost_centre"] == (ROLE_ENTRY, "Cost centre / 成本中心")
