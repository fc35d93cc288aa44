"""Invoice PDFs, the cost list and the weekly notes: made from a seed, and readable on a real desktop.

The PDFs open in evince, which exposes a page's text through AT-SPI: the test reads it as the agent's
accessibility sensor does, for every layout in both languages. The cost list opens in mousepad.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from demo_apps.invoices import LANGUAGES, LAYOUTS, make_invoice, money, write_pdf
from demo_apps.scenario import invoice_set
from demo_apps.texts import write_cost_list, write_weekly_notes
from harness.dbus import SessionBus
from harness.processes import wait_until
from session_agent.sensors.accessibility import AtspiClient
from shadowdesk_common.desktop import VirtualDesktop
from tests.support.a11y import window_text


def test_the_same_seed_gives_the_same_invoice_and_the_same_pdf(tmp_path: Path) -> None:
    first, second = make_invoice(7, "zh", "fapiao"), make_invoice(7, "zh", "fapiao")
    assert first == second and make_invoice(8, "zh", "fapiao") != first
    a, b = write_pdf(first, tmp_path / "a.pdf"), write_pdf(second, tmp_path / "b.pdf")
    assert a.read_bytes() == b.read_bytes() and a.read_bytes().startswith(b"%PDF-")


def test_expected_claim_adds_up_in_the_portals_form() -> None:
    for seed in range(30):
        invoice = make_invoice(seed)
        expected = invoice.expected_claim()
        assert Decimal(expected["amount"]) == invoice.subtotal + invoice.tax
        assert Decimal(expected["tax"]) == (invoice.subtotal * invoice.tax_rate).quantize(Decimal("0.01"))
        assert expected["invoice_date"] == invoice.invoice_date.isoformat()
        assert invoice.language in LANGUAGES and invoice.layout in LAYOUTS
    zh = make_invoice(3, "zh", "classic")
    assert zh.printed_date == f"{zh.invoice_date.year}年{zh.invoice_date:%m}月{zh.invoice_date:%d}日"
    assert money(Decimal("1234.5"), "zh") == "¥1,234.50" and money(Decimal("1234.5"), "en") == "1,234.50"


def test_an_unknown_language_or_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown language"):
        make_invoice(1, "fr", "classic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layout"):
        make_invoice(1, "en", "poster")  # type: ignore[arg-type]


def test_invoice_set_covers_every_layout_in_both_languages(tmp_path: Path) -> None:
    written = invoice_set(tmp_path, seed=100, count=12)
    assert {(inv.layout, inv.language) for _, inv in written} == {(x, y) for x in LAYOUTS for y in LANGUAGES}
    assert len({inv.invoice_number for _, inv in written}) == 12  # ten new invoices are ten claims


def test_cost_list_and_weekly_notes_are_lines_of_both_languages(tmp_path: Path) -> None:
    costs = write_cost_list(tmp_path / "costs.txt", seed=5, count=8)
    assert (tmp_path / "costs.txt").read_text(encoding="utf-8").splitlines() == [c.line() for c in costs]
    assert any(c.item.isascii() for c in costs) and any(not c.item.isascii() for c in costs)
    assert write_cost_list(tmp_path / "again.txt", seed=5, count=8) == costs
    week, lines = write_weekly_notes(tmp_path / "notes.txt", seed=5)
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8").splitlines() == lines
    assert re.fullmatch(r"2025-W\d{2}", week)
    with pytest.raises(ValueError):
        write_weekly_notes(tmp_path / "notes.txt", seed=5, count=6)  # a report holds five items


@pytest.fixture(scope="module")
def a11y_desktop() -> Iterator[tuple[VirtualDesktop, SessionBus, AtspiClient]]:
    with VirtualDesktop(width=1280, height=900) as desktop, SessionBus(desktop.env) as bus:
        client = AtspiClient.connect(bus.address)
        try:
            yield desktop, bus, client
        finally:
            client.close()


@pytest.mark.e2e
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_evince_exposes_the_invoice_through_atspi(
    a11y_desktop: tuple[VirtualDesktop, SessionBus, AtspiClient], tmp_path: Path, layout: str, language: str
) -> None:
    desktop, bus, client = a11y_desktop
    invoice = make_invoice(40 + LAYOUTS.index(layout), language, layout)  # type: ignore[arg-type]
    pdf = write_pdf(invoice, tmp_path / f"{language}-{layout}.pdf")
    env = {**bus.app_env, "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    # Left open until the desktop stops: the agent's AT-SPI client reads a dead app's error replies as
    # values (it never unwraps them), so a closed app in the registry would break the next walk.
    desktop.launch(["evince", str(pdf)], env=env)
    # evince titles the window "<file> — <the PDF's title>".
    window = desktop.wait_for_window(f"{pdf.name} — Invoice {invoice.invoice_number}")
    text: list[str] = []

    def invoice_number_read() -> bool:
        text[:] = [window_text(client, desktop, window)]
        return invoice.invoice_number in text[0]

    wait_until(invoice_number_read, 30, f"the invoice number in evince's AT-SPI tree; read {text}")
    for shown in (invoice.vendor, invoice.printed_date, money(invoice.amount, invoice.language)):
        assert shown in text[0], (shown, text[0])


@pytest.mark.e2e
def test_mousepad_exposes_the_cost_list_through_atspi(
    a11y_desktop: tuple[VirtualDesktop, SessionBus, AtspiClient], tmp_path: Path
) -> None:
    desktop, bus, client = a11y_desktop
    path = tmp_path / "cost-list.txt"
    costs = write_cost_list(path, seed=9)
    desktop.launch(["mousepad", str(path)], env={**bus.app_env, "XDG_CONFIG_HOME": str(tmp_path)})
    window = desktop.wait_for_window(f"{path} - Mousepad")
    text: list[str] = []

    def every_line_read() -> bool:
        text[:] = [window_text(client, desktop, window)]
        return all(cost.line() in text[0] for cost in costs)

    wait_until(every_line_read, 30, f"the cost list in mousepad's AT-SPI tree; read {text}")
