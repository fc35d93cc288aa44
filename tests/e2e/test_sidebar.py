"""The Recall sidebar in a real headless Chromium, against the real server fed through real gRPC ingest.

Frames are rendered with PIL (English and Chinese text), sent as an agent would, OCR'd and indexed by
the server's recall pipeline; the browser then searches, opens moments, asks, pauses capture and erases
through the page, as a user would.
"""

from __future__ import annotations

import re
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, expect

from harness.processes import ServerProcess, wait_until
from tests.support.cloud import focus
from tests.support.screens import frame_event, text_frame
from tests.support.sidebar_page import UI_TIMEOUT_MS, Sidebar, api_get, ingest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NS = 1_000_000_000
BROWSER_ZONE = "Asia/Shanghai"
INVOICE_TITLE = "invoice-2041.txt - Mousepad"
CLAIM_TITLE = "差旅报销 - Chromium"
_BLOB = re.compile(r"^blob:")


def search_hits(server: ServerProcess, user: str, q: str) -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = api_get(server, user, "/v1/recall/search", q=q)["hits"]
    return hits


def local_input(moment: datetime) -> str:
    """The value a datetime-local input shows for ``moment`` in the browser's zone."""
    return moment.astimezone(ZoneInfo(BROWSER_ZONE)).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("sidebar")
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(root / "store")}
    process = ServerProcess(store, root / "server.log", llm_threads="4", llm_max_output_tokens="48")
    process.start()
    yield process
    process.terminate()


@pytest.fixture
def sidebar(browser: Browser, server: ServerProcess) -> Iterator[Sidebar]:
    context = browser.new_context(
        viewport={"width": 380, "height": 900}, timezone_id=BROWSER_ZONE, locale="en-US"
    )
    try:
        yield Sidebar(context.new_page(), server)
    finally:
        context.close()


def test_search_open_ask_and_erase_through_the_page(
    sidebar: Sidebar, server: ServerProcess, tmp_path: Path
) -> None:
    user, session = "sidebar-alice", "alice-desk"
    page = sidebar.page
    sidebar.open(user)
    # The login ticket left the address bar as soon as the page read it.
    assert page.url == f"{server.http_url}/sidebar"
    expect(page.get_by_test_id("results-intro")).to_be_visible()

    t0 = time.time_ns() - 120 * NS
    invoice = text_frame(["Invoice INV-2041 total 1,280.00 USD", "ACME Trading Ltd"])
    claim = text_frame(["报销单 金额 356 元", "差旅 上海"])
    ingest(
        server,
        user,
        session,
        [
            focus(1, t0, "mousepad", INVOICE_TITLE, window_id=11),
            frame_event(2, t0 + NS, invoice, window_id=11),
            focus(3, t0 + 3 * NS, "chromium", CLAIM_TITLE, window_id=12),
            frame_event(4, t0 + 4 * NS, claim, window_id=12),
        ],
    )
    # Polled once a second: the user's searches are limited to 120 a minute, and indexing a frame
    # (OCR, multilingual embeddings) takes seconds on a loaded machine.
    wait_until(lambda: search_hits(server, user, "INV-2041"), 60, "the invoice frame indexed", interval_s=1)
    wait_until(lambda: search_hits(server, user, "报销单"), 60, "the claim frame indexed", interval_s=1)

    # Live: with nothing searched, the recent list picks the new moments up by itself.
    expect(sidebar.items()).to_have_count(2, timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("results-intro")).to_be_hidden()

    sidebar.search("INV-2041")
    invoice_item = sidebar.items().first
    expect(invoice_item.get_by_test_id("result-title")).to_have_text(INVOICE_TITLE, timeout=UI_TIMEOUT_MS)
    expect(invoice_item.get_by_test_id("result-app")).to_have_text("mousepad")
    expect(invoice_item.get_by_test_id("result-time")).not_to_be_empty()
    marks = invoice_item.get_by_test_id("snippet-hit")
    expect(marks.first).to_be_visible()
    assert any("2041" in m or "inv" in m.lower() for m in marks.all_text_contents()), (
        marks.all_text_contents()
    )
    thumb = invoice_item.get_by_test_id("result-thumb")
    expect(thumb).to_have_attribute("src", _BLOB, timeout=UI_TIMEOUT_MS)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    invoice_moment = invoice_item.get_attribute("data-moment-id")

    invoice_item.get_by_role("button").click()
    moment = page.get_by_test_id("moment-view")
    expect(moment).to_be_visible()
    expect(page.get_by_test_id("moment-title")).to_have_text(INVOICE_TITLE)
    expect(page.get_by_test_id("results")).to_be_hidden()
    frame = page.get_by_test_id("moment-frame")
    expect(frame).to_have_attribute("src", _BLOB, timeout=UI_TIMEOUT_MS)
    assert frame.evaluate("img => img.naturalWidth") == 1000
    boxes = page.get_by_test_id("hit-box")
    expect(boxes.first).to_be_visible(timeout=UI_TIMEOUT_MS)
    # The boxes lie on the frame as shown: inside the image, in its top half (where the invoice line is).
    image_box, hit_box = frame.bounding_box(), boxes.first.bounding_box()
    assert image_box is not None and hit_box is not None
    assert (
        image_box["x"] <= hit_box["x"]
        and hit_box["x"] + hit_box["width"] <= image_box["x"] + image_box["width"] + 1
    )
    assert image_box["y"] <= hit_box["y"] < image_box["y"] + image_box["height"] / 2
    page.screenshot(path=str(tmp_path / "sidebar-moment.png"), full_page=True)
    page.keyboard.press("Escape")
    expect(moment).to_be_hidden()

    # A date in the query ranks by both readings, never empties the list; the user can make it a filter.
    sidebar.search("INV-2041 last month")
    expect(page.get_by_test_id("dates-both")).to_have_attribute("aria-pressed", "true", timeout=UI_TIMEOUT_MS)
    expect(sidebar.items().first.get_by_test_id("result-title")).to_have_text(INVOICE_TITLE)
    page.get_by_test_id("dates-seen").click()
    expect(page.get_by_test_id("dates-seen")).to_have_attribute("aria-pressed", "true", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("results-empty")).to_be_visible()  # nothing was seen last month

    sidebar.search("报销单")
    claim_item = sidebar.items().first
    expect(claim_item.get_by_test_id("result-title")).to_have_text(CLAIM_TITLE, timeout=UI_TIMEOUT_MS)
    expect(claim_item.get_by_test_id("result-snippet")).to_contain_text("356")
    assert any("报销" in m for m in claim_item.get_by_test_id("snippet-hit").all_text_contents())

    # Ask: a streamed answer, with its sources linking back to the moments it was given.
    sidebar.tab("Ask")
    page.get_by_test_id("ask-input").fill("What was the total of invoice INV-2041?")
    page.get_by_test_id("ask-submit").click()
    citations = page.get_by_test_id("citation")
    expect(citations.first).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("answer")).not_to_be_empty()
    expect(page.get_by_test_id("answer")).to_have_attribute("aria-busy", "false")
    assert invoice_moment in [c.get_attribute("data-moment-id") for c in citations.all()]
    # The embedded model is not trusted with answers: the history's own lines, the matches marked.
    expect(page.get_by_test_id("answer")).to_have_attribute("data-mode", "extractive")
    expect(page.get_by_test_id("answer")).to_contain_text("[1]")
    expect(citations.first.locator("mark").first).to_be_visible()

    # Export: the zip arrives as a download, with the frames in it.
    sidebar.tab("Privacy")
    with page.expect_download(timeout=60_000) as download_info:
        page.get_by_test_id("export").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(download.path()) as archive:
        names = archive.namelist()
    assert any(name.endswith(".png") for name in names), names
    expect(page.get_by_test_id("status")).to_contain_text("Export saved")

    # Erase the time range holding everything, confirming in the dialog; search then finds nothing.
    now = datetime.now(UTC)
    page.get_by_test_id("erase-start").fill(
        local_input(datetime.fromtimestamp(t0 / NS, UTC) - timedelta(minutes=1))
    )
    page.get_by_test_id("erase-end").fill(local_input(now + timedelta(minutes=1)))
    page.get_by_test_id("erase-range").click()
    dialog = page.get_by_test_id("confirm-dialog")
    expect(dialog).to_be_visible()
    expect(page.get_by_test_id("confirm-message")).to_contain_text("cannot be undone")
    page.get_by_test_id("confirm-ok").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("status")).to_contain_text("Erased", timeout=UI_TIMEOUT_MS)
    sidebar.search("INV-2041")
    expect(page.get_by_test_id("results-empty")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(sidebar.items()).to_have_count(0)
    assert search_hits(server, user, "INV-2041") == []
    assert search_hits(server, user, "报销单") == []

    assert sidebar.errors == []


def test_pause_toggle_round_trips_through_privacy_settings(sidebar: Sidebar, server: ServerProcess) -> None:
    user = "sidebar-bob"
    page = sidebar.page
    sidebar.open(user)
    sidebar.tab("Privacy")
    pause = page.get_by_test_id("privacy-pause")
    expect(pause).not_to_be_checked()
    expect(page.get_by_test_id("paused-badge")).to_be_hidden()

    pause.click()  # pausing only captures less: no confirmation
    expect(page.get_by_test_id("paused-badge")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("confirm-dialog")).to_be_hidden()
    wait_until(lambda: api_get(server, user, "/v1/privacy")["paused"] is True, 10, "paused stored")

    # A fresh page reads the stored setting back; resuming capture is confirmed first.
    sidebar.open(user)
    sidebar.tab("Privacy")
    expect(pause).to_be_checked()
    pause.click()
    expect(page.get_by_test_id("confirm-message")).to_contain_text("Capture resumes")
    page.get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("paused-badge")).to_be_hidden(timeout=UI_TIMEOUT_MS)
    wait_until(lambda: api_get(server, user, "/v1/privacy")["paused"] is False, 10, "paused cleared")
    assert api_get(server, user, "/v1/privacy")["retention_days"] == 90  # the rest left as it was
    assert sidebar.errors == []


def test_screen_text_is_shown_as_text_never_as_markup(sidebar: Sidebar, server: ServerProcess) -> None:
    user, session = "sidebar-mallory", "mallory-desk"
    title = 'Quarterly <img src=x onerror="window.__pwned=1"> <b>plan</b>'
    ingest(server, user, session, [focus(1, time.time_ns() - 30 * NS, "mousepad", title, window_id=5)])
    wait_until(lambda: search_hits(server, user, "Quarterly"), 60, "the title indexed", interval_s=1)

    page = sidebar.page
    sidebar.open(user)
    item = sidebar.items().first
    expect(item.get_by_test_id("result-title")).to_have_text(title, timeout=UI_TIMEOUT_MS)
    assert item.locator("b").count() == 0
    assert item.locator("img").count() == 1  # only the (empty) thumbnail slot
    assert page.evaluate("() => window.__pwned") is None

    # Forget it: a moment without frames shows its text only, and after confirming it is gone.
    item.get_by_role("button").click()
    expect(page.get_by_test_id("moment-title")).to_have_text(title)
    expect(page.get_by_test_id("moment-frame-wrap")).to_be_hidden()
    expect(page.get_by_test_id("moment-rows")).to_contain_text(title)
    page.get_by_test_id("moment-forget").click()
    page.get_by_test_id("confirm-ok").click()
    expect(page.get_by_test_id("status")).to_contain_text("Moment forgotten", timeout=UI_TIMEOUT_MS)
    expect(sidebar.items()).to_have_count(0)
    assert search_hits(server, user, "Quarterly") == []
    assert sidebar.errors == []


def test_page_without_a_sign_in_says_so(sidebar: Sidebar, server: ServerProcess) -> None:
    page = sidebar.page
    page.goto(f"{server.http_url}/sidebar")
    expect(page.get_by_test_id("status")).to_have_text(
        "Signed out: open the sidebar from the Shadowdesk client again."
    )
    expect(page.get_by_test_id("search-input")).to_be_disabled()
    assert sidebar.errors == []
