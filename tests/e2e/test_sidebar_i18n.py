"""The sidebar in Chinese and English, by keyboard alone, under axe-core, and its "Try this" panel.

A real server with a short bilingual history (an English invoice, a Chinese expense claim, OCR'd and
indexed by the server's own pipeline) and a real headless Chromium, with its locale set per test.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page, expect

from harness.processes import ServerProcess, wait_until
from tests.support.cloud import focus
from tests.support.screens import frame_event, text_frame
from tests.support.sidebar_page import UI_TIMEOUT_MS, Sidebar, api_get, ingest, login_ticket

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NS = 1_000_000_000
USER, SESSION = "i18n-alice", "i18n-desk"
INVOICE_TITLE = "invoice-2041.txt - Mousepad"
INVOICE_LINES = ["Invoice INV-2041 total 1,280.00 USD", "ACME Trading Ltd"]
PLACEHOLDER_ZH = "搜索你看过的内容… 例如：上周的报销单"
CLAIM_TITLE = "差旅报销 - Chromium"
TABS_EN = ["Search", "Ask", "Assist", "Privacy", "Macros"]
TABS_ZH = ["搜索", "提问", "助手", "隐私", "宏"]
SERIOUS = {"serious", "critical"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("sidebar-i18n")
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(root / "store")}
    process = ServerProcess(store, root / "server.log", llm_threads="4", llm_max_output_tokens="48")
    process.start()
    t0 = time.time_ns() - 120 * NS
    ingest(
        process,
        USER,
        SESSION,
        [
            focus(1, t0, "mousepad", INVOICE_TITLE, window_id=11),
            frame_event(2, t0 + NS, text_frame(INVOICE_LINES), 11),
            focus(3, t0 + 3 * NS, "chromium", CLAIM_TITLE, window_id=12),
            frame_event(4, t0 + 4 * NS, text_frame(["报销单 金额 356 元", "差旅 上海"]), 12),
        ],
    )
    for query in ("INV-2041", "报销单"):
        wait_until(functools.partial(_hits, process, query), 60, f"{query} indexed", interval_s=1)
    yield process
    process.terminate()


def _hits(server: ServerProcess, query: str) -> object:
    return api_get(server, USER, "/v1/recall/search", q=query)["hits"]


def _context(browser: Browser, locale: str) -> BrowserContext:
    return browser.new_context(viewport={"width": 380, "height": 900}, locale=locale)


@pytest.fixture
def english(browser: Browser, server: ServerProcess) -> Iterator[Sidebar]:
    context = _context(browser, "en-US")
    try:
        yield Sidebar(context.new_page(), server)
    finally:
        context.close()


@pytest.fixture
def chinese(browser: Browser, server: ServerProcess) -> Iterator[Sidebar]:
    context = _context(browser, "zh-CN")
    try:
        yield Sidebar(context.new_page(), server)
    finally:
        context.close()


def _open(sidebar: Sidebar, live: str = "Live") -> Page:
    sidebar.open_ticket(login_ticket(USER))
    expect(sidebar.page.get_by_test_id("live-status")).to_have_text(live, timeout=UI_TIMEOUT_MS)
    return sidebar.page


def _tab_names(page: Page) -> list[str]:
    return page.locator("nav [role=tab]").all_inner_texts()


def test_the_page_follows_the_browser_language_and_keeps_the_users_choice(
    chinese: Sidebar, english: Sidebar
) -> None:
    page = _open(chinese, "实时")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    assert _tab_names(page) == TABS_ZH
    expect(page.get_by_test_id("search-input")).to_have_attribute(
        "placeholder", "搜索你看过的内容… 例如：上周的报销单"
    )
    # Dates follow the language too; titles are the user's and stay as they were.
    expect(page.get_by_test_id("result-title")).to_have_text(
        [CLAIM_TITLE, INVOICE_TITLE], timeout=UI_TIMEOUT_MS
    )
    expect(page.get_by_test_id("result-time").first).to_have_text(_clock("zh-CN", page))
    switch = page.get_by_test_id("lang-switch")
    expect(switch).to_have_text("English")
    expect(switch).to_have_attribute("lang", "en")

    switch.click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert _tab_names(page) == TABS_EN
    expect(page.get_by_test_id("live-status")).to_have_text("Live")
    expect(page.locator("#results-heading")).to_have_text("Recent moments")
    expect(switch).to_have_text("中文")
    assert page.evaluate("localStorage.getItem('shadowdesk.lang')") == "en"
    # The choice outlives a reload (which signs in again from this tab's storage).
    page.reload()
    expect(page.get_by_test_id("live-status")).to_have_text("Live", timeout=UI_TIMEOUT_MS)
    assert _tab_names(page) == TABS_EN

    page = _open(english)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert _tab_names(page) == TABS_EN
    page.get_by_test_id("lang-switch").click()
    assert _tab_names(page) == TABS_ZH
    expect(page.get_by_test_id("live-status")).to_have_text("实时")


def _clock(locale: str, page: Page) -> str:
    """What the page should show for the newest result's time, formatted by the browser for ``locale``."""
    iso = page.get_by_test_id("result-time").first.get_attribute("datetime")
    text: str = page.evaluate(
        "([iso, locale]) => new Intl.DateTimeFormat(locale, {hour: '2-digit', minute: '2-digit'})"
        ".format(new Date(iso))",
        [iso, locale],
    )
    return text


def test_a_choice_made_in_another_page_of_the_origin_applies_at_once(chinese: Sidebar) -> None:
    """The thin-client page (/desk) and the sidebar in its iframe share the choice through storage."""
    page = _open(chinese, "实时")
    other = page.context.new_page()
    other.goto(page.url)  # the same origin; signed out, but its switch works
    other.get_by_test_id("lang-switch").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert _tab_names(page) == TABS_EN
    other.close()


def test_keyboard_alone_searches_opens_a_result_moves_between_tabs_and_asks(english: Sidebar) -> None:
    page = _open(english)
    expect(english.items()).to_have_count(2, timeout=UI_TIMEOUT_MS)
    page.keyboard.press("/")
    expect(page.get_by_test_id("search-input")).to_be_focused()
    page.keyboard.type("INV-2041")
    page.keyboard.press("Enter")
    expect(english.items()).to_have_count(1, timeout=UI_TIMEOUT_MS)
    # Tab walks to the result (past the search button, the filters and the "Try this" toggle).
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('result-open')"):
            break
    else:
        pytest.fail("Tab never reached the result")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("moment-title")).to_have_text(INVOICE_TITLE, timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("moment-back")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("moment-view")).to_be_hidden()

    # The tabs: one Tab stop, arrows and Home/End move the selection and the focus.
    page.get_by_role("tab", name="Search").focus()
    page.keyboard.press("ArrowRight")
    ask = page.get_by_role("tab", name="Ask")
    expect(ask).to_be_focused()
    expect(ask).to_have_attribute("aria-selected", "true")
    expect(ask).to_have_attribute("tabindex", "0")
    expect(page.get_by_role("tab", name="Search")).to_have_attribute("tabindex", "-1")
    expect(page.get_by_role("tabpanel")).to_have_attribute("id", "panel-ask")
    page.keyboard.press("End")
    expect(page.get_by_role("tab", name="Macros")).to_be_focused()
    page.keyboard.press("ArrowRight")  # wraps around
    expect(page.get_by_role("tab", name="Search")).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_role("tab", name="Macros")).to_be_focused()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    expect(ask).to_be_focused()

    # Ask: Tab into the question, Ctrl+Enter sends it; the answer streams into a live region.
    page.keyboard.press("Tab")
    expect(page.get_by_test_id("ask-input")).to_be_focused()
    page.keyboard.type("How much was the invoice INV-2041?")
    page.keyboard.press("Control+Enter")
    answer = page.get_by_test_id("answer")
    expect(answer).to_have_attribute("aria-live", "polite")
    expect(answer).to_contain_text("[1]", timeout=60_000)
    expect(answer).to_have_attribute("aria-busy", "false", timeout=60_000)


def _axe(page: Page, where: str) -> list[str]:
    results = Axe().run(page)
    assert results.response["passes"], "axe checked nothing"  # it ran, under the page's CSP
    return [
        f"{where}: {v['id']} ({v['impact']}) {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in SERIOUS
    ]


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_axe_finds_nothing_serious_on_any_tab_in_either_language(
    browser: Browser, server: ServerProcess, locale: str
) -> None:
    context = _context(browser, locale)
    try:
        sidebar = Sidebar(context.new_page(), server)
        page = _open(sidebar, "Live" if locale == "en-US" else "实时")
        expect(sidebar.items()).to_have_count(2, timeout=UI_TIMEOUT_MS)
        # Once the suggestions are in, a new history has opened the panel by itself; else open it (a
        # click before they arrive could close what was about to open).
        expect(page.get_by_test_id("try-suggestion").first).to_be_attached(timeout=UI_TIMEOUT_MS)
        toggle = page.get_by_test_id("try-toggle")
        if toggle.get_attribute("aria-expanded") != "true":
            toggle.click()
        expect(page.get_by_test_id("try-suggestion").first).to_be_visible(timeout=UI_TIMEOUT_MS)
        found = _axe(page, "search")
        sidebar.items().first.get_by_role("button").click()
        expect(page.get_by_test_id("moment-view")).to_be_visible()
        found += _axe(page, "moment")
        page.keyboard.press("Escape")
        for tab in ["ask", "assist", "privacy", "macros"]:
            page.locator(f"#tab-{tab}").click()
            expect(page.locator(f"#panel-{tab}")).to_be_visible()
            found += _axe(page, tab)
        assert found == [], "\n".join(found)
        assert sidebar.errors == []
    finally:
        context.close()


def test_try_this_suggests_queries_from_the_users_own_history_in_both_languages(english: Sidebar) -> None:
    page = _open(english)
    panel = page.get_by_test_id("try-panel")
    # A new history: the panel opens by itself.
    expect(panel).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("try-toggle")).to_have_attribute("aria-expanded", "true")
    suggestions = page.get_by_test_id("try-suggestion")
    expect(suggestions.first).to_be_visible()
    langs = {
        suggestions.nth(i).locator(".try-text").get_attribute("lang") for i in range(suggestions.count())
    }
    assert langs == {"zh-CN", "en"}, langs
    texts = [suggestions.nth(i).locator(".try-text").inner_text() for i in range(suggestions.count())]
    assert "INV-2041" in texts, texts

    # A search suggestion runs the search, and it finds something.
    search = page.locator("[data-testid=try-suggestion][data-kind=search]").first
    query = search.locator(".try-text").inner_text()
    search.click()
    expect(page.get_by_test_id("search-input")).to_have_value(query)
    expect(page.locator("#results-heading")).to_have_text("Results", timeout=UI_TIMEOUT_MS)
    expect(english.items().first).to_be_visible(timeout=UI_TIMEOUT_MS)

    # A question goes to Ask, and is answered from the history.
    question = page.locator("[data-testid=try-suggestion][data-kind=ask]").first
    asked = question.locator(".try-text").inner_text()
    question.click()
    expect(page.get_by_role("tab", name="Ask")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("ask-input")).to_have_value(asked)
    expect(page.get_by_test_id("citation").first).to_be_visible(timeout=60_000)

    # Hidden by the user, it stays hidden on the next visit until the toggle opens it again.
    page.get_by_role("tab", name="Search").click()
    page.get_by_test_id("try-close").click()
    expect(panel).to_be_hidden()
    expect(page.get_by_test_id("try-toggle")).to_be_focused()
    _open(english)
    expect(page.get_by_test_id("try-list").locator("li").first).to_be_attached(timeout=UI_TIMEOUT_MS)
    expect(panel).to_be_hidden()
    page.get_by_test_id("try-toggle").press("Enter")
    expect(panel).to_be_visible()
    expect(suggestions.first).to_be_focused()
    assert english.errors == []
