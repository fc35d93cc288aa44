"""The expense portal over HTTP (a real server on port 0): checks, ownership, duplicates, faults, admin."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import time

import httpx
import pytest

from demo_apps.expense_portal import Faults, PortalDatabase, PortalServer
from demo_apps.expense_portal.forms import normalise_date, normalise_money
from tests.support.portal import OTHER, OTHER_PASSWORD, signed_in

PAGE_ONE = {"vendor": "Northwind Traders Ltd", "invoice_number": "INV-12345678", "invoice_date": "2025/3/4"}
PAGE_TWO = {"amount": "¥1,234.5", "tax": "71.89", "category": "office", "cost_centre": "CC-2040"}


def fill_claim(client: httpx.Client) -> str:
    """Post both pages of a new claim; returns the review page's path."""
    page_one = client.get("/claims/new").url.path
    page_two = client.post(page_one, data=PAGE_ONE)
    assert page_two.status_code == 200 and page_two.url.path.endswith("/page/2"), page_two.text
    review = client.post(page_two.url.path, data=PAGE_TWO)
    assert review.status_code == 200 and review.url.path.endswith("/review"), review.text
    return review.url.path


def test_dates_and_amounts_are_normalised_or_refused() -> None:
    assert normalise_date("2025年3月4日") == normalise_date("2025/03/04") == "2025-03-04"
    assert normalise_money("¥1,234.5") == normalise_money("1234.50") == "1234.50"
    for bad in ("2025-02-30", "4.3.2025", ""):
        with pytest.raises(ValueError):
            normalise_date(bad)
    for bad in ("12,34", "1.234", "-5", "abc", ""):
        with pytest.raises(ValueError):
            normalise_money(bad)


def test_signing_in_needs_the_right_password(portal: PortalServer) -> None:
    client = httpx.Client(base_url=portal.url, follow_redirects=True, timeout=10)
    assert client.get("/claims/new").url.path == "/login"
    wrong = client.post("/login", data={"username": "alice", "password": "nope", "next": "/claims/new"})
    assert wrong.status_code == 401 and 'id="login-error"' in wrong.text
    assert 'type="password" id="password" name="password"' in wrong.text
    # An address off the site is never where sign-in leads.
    away = client.post(
        "/login", data={"username": "alice", "password": "expenses-2025", "next": "//evil.example/"}
    )
    assert away.url.host == "127.0.0.1" and away.url.path.endswith("/page/1")


def test_bad_values_are_shown_beside_their_fields_and_nothing_moves_on(portal: PortalServer) -> None:
    client = signed_in(portal)
    page_one = client.get("/claims/new").url.path
    reply = client.post(page_one, data={**PAGE_ONE, "invoice_date": "yesterday"})
    assert reply.status_code == 422 and reply.url.path == page_one
    assert 'id="invoice_date-error"' in reply.text and 'aria-describedby="invoice_date-error"' in reply.text
    page_two = client.post(page_one, data=PAGE_ONE).url.path
    reply = client.post(page_two, data={**PAGE_TWO, "tax": "5000", "category": "yachts"})
    assert reply.status_code == 422
    assert 'id="tax-error"' in reply.text and 'id="category-error"' in reply.text


def test_claim_is_filed_once_with_normalised_values(portal: PortalServer, database: PortalDatabase) -> None:
    client = signed_in(portal)
    review = fill_claim(client)
    submit = review.replace("/review", "/submit")
    filed = client.post(submit)
    assert filed.status_code == 200
    number = re.findall(r'id="claim-number">(EXP-\d{6})<', filed.text)
    assert number == ["EXP-000001"] and filed.url.path == "/filed/EXP-000001"
    again = client.post(submit)
    assert again.status_code == 409 and "EXP-000001" in again.text
    # A submitted form's pages are closed too.
    assert client.post(review.replace("/review", "/page/1"), data=PAGE_ONE).status_code == 409
    claims = database.claims()
    assert len(claims) == 1
    assert claims[0].fields() == {
        "vendor": "Northwind Traders Ltd",
        "invoice_number": "INV-12345678",
        "invoice_date": "2025-03-04",
        "amount": "1234.50",
        "tax": "71.89",
        "category": "office",
        "cost_centre": "CC-2040",
    }


def test_a_user_never_reaches_another_users_forms_or_claims(portal: PortalServer) -> None:
    alice = signed_in(portal)
    review = fill_claim(alice)
    alice.post(review.replace("/review", "/submit"))
    bob = signed_in(portal, OTHER, OTHER_PASSWORD)
    assert bob.get(review).status_code == 404
    assert bob.post(review.replace("/review", "/submit")).status_code == 404
    assert bob.get("/filed/EXP-000001").status_code == 404


def test_admin_and_read_api_need_the_admin_token(portal: PortalServer) -> None:
    for path in ("/api/claims", "/api/reports", "/admin/faults"):
        assert httpx.get(portal.url + path, headers={"X-Admin-Token": "wrong"}).status_code == 403
    put = httpx.put(portal.url + "/admin/faults", json={"drop_field": "nonsense"}, headers=_admin(portal))
    assert put.status_code == 422 and "nonsense" in put.text
    assert httpx.get(portal.url + "/api/claims", headers=_admin(portal)).json() == []


def _admin(portal: PortalServer) -> dict[str, str]:
    return {"X-Admin-Token": portal.config.admin_token}


def test_dropped_field_is_stored_empty_and_shown_so(portal: PortalServer, database: PortalDatabase) -> None:
    portal.set_faults(Faults(drop_field="invoice_number"))
    client = signed_in(portal)
    filed = client.post(fill_claim(client).replace("/review", "/submit"))
    assert filed.status_code == 200 and 'id="review-invoice_number"></dd>' in filed.text
    (claim,) = database.claims()
    assert claim.invoice_number == "" and claim.vendor == PAGE_ONE["vendor"]


def test_error_fault_stores_nothing_then_recovers(portal: PortalServer, database: PortalDatabase) -> None:
    client = signed_in(portal)
    review = fill_claim(client)
    portal.set_faults(Faults(error=2))
    for _ in range(2):
        failed = client.post(review.replace("/review", "/submit"))
        assert failed.status_code == 500 and 'id="server-error"' in failed.text
    assert database.claims() == []
    assert client.post(review.replace("/review", "/submit")).status_code == 200
    assert len(database.claims()) == 1


def test_slow_fault_delays_every_page_but_not_the_admin_api(portal: PortalServer) -> None:
    client = signed_in(portal)
    portal.set_faults(Faults(slow_s=1.5))
    started = time.monotonic()
    assert client.get("/login").status_code == 200
    assert time.monotonic() - started >= 1.5
    started = time.monotonic()
    assert httpx.get(portal.url + "/api/claims", headers=_admin(portal)).status_code == 200
    assert time.monotonic() - started < 1.0


def _report_items(page: httpx.Response) -> list[str]:
    listed = re.search(r'<ol id="report-items">(.*?)</ol>', page.text)
    assert listed is not None, page.text
    return [html.unescape(item) for item in re.findall(r"<li>(.*?)</li>", listed.group(1))]


def test_weekly_report_items_are_added_one_at_a_time_and_filed_once_in_order(
    portal: PortalServer, database: PortalDatabase
) -> None:
    client = signed_in(portal)
    form = client.get("/reports/new").url.path
    lines = ["完成第三季度预算审核", "Reviewed 12 expense claims <b>&</b>", "与华信公司沟通续约事宜"]
    for count, line in enumerate(lines, start=1):
        added = client.post(f"{form}/items", data={"week": "2025-W23", "item": f"  {line} "})
        # Redirected back to the form: the items so far, the week kept, the item field empty again.
        assert added.status_code == 200 and added.url.path == form, added.text
        assert _report_items(added) == lines[:count]
        assert 'id="week" name="week" value="2025-W23"' in added.text
        assert 'id="item" name="item" value=""' in added.text
    assert _report_items(client.get(form)) == lines  # a reload adds nothing
    filed = client.post(f"{form}/submit", data={"week": "2025-W23", "item": ""})
    assert filed.status_code == 200 and 'id="report-number">WR-000001<' in filed.text
    assert "Report WR-000001 submitted - Expense Portal" in filed.text
    again = client.post(f"{form}/submit", data={"week": "2025-W23", "item": ""})
    assert again.status_code == 409 and "WR-000001" in again.text
    late = client.post(f"{form}/items", data={"week": "2025-W23", "item": "one more"})
    assert late.status_code == 409 and client.get(form).status_code == 409
    (report,) = database.reports()
    assert (report.user, report.week, report.lines) == ("alice", "2025-W23", tuple(lines))
    bob = signed_in(portal, OTHER, OTHER_PASSWORD)
    other = bob.get("/reports/new").url.path
    assert bob.get(form).status_code == 404 and client.get(other).status_code == 404
    assert bob.post(f"{form}/items", data={"week": "2025-W23", "item": "x"}).status_code == 404
    assert bob.post(f"{form}/submit", data={"week": "2025-W23"}).status_code == 404


def test_weekly_report_limits_are_errors_beside_their_fields_and_store_nothing(
    portal: PortalServer, database: PortalDatabase
) -> None:
    client = signed_in(portal)
    form = client.get("/reports/new").url.path

    def refused(path: str, data: dict[str, str], field: str, says: str) -> None:
        reply = client.post(f"{form}/{path}", data=data)
        error = re.search(rf'id="{field}-error"[^>]*>([^<]*)<', reply.text)
        assert reply.status_code == 422 and error is not None and says in error.group(1), reply.text

    refused("items", {"week": "2025-W23", "item": "  "}, "item", "Type an item first")
    refused("items", {"week": "2025-W23", "item": "x" * 501}, "item", "At most 500 characters")
    refused("submit", {"week": "2025-W23", "item": ""}, "item", "Add at least one item")
    for index in range(5):
        assert client.post(f"{form}/items", data={"week": "", "item": f"item {index}"}).status_code == 200
    refused("items", {"week": "2025-W23", "item": "a sixth"}, "item", "At most 5 items")
    refused("submit", {"week": "week 23", "item": ""}, "week", "A week like 2025-W23")
    refused("submit", {"week": "2025-W23", "item": "typed, not added"}, "item", "Add this item or clear it")
    assert _report_items(client.get(form)) == [f"item {index}" for index in range(5)]
    # The error fault counts Add and Submit as form posts: a 500, nothing stored, then it recovers.
    portal.set_faults(Faults(error=2))
    for path in ("items", "submit"):
        failed = client.post(f"{form}/{path}", data={"week": "2025-W23", "item": ""})
        assert failed.status_code == 500 and 'id="server-error"' in failed.text
    assert database.reports() == [] and len(_report_items(client.get(form))) == 5
    assert client.post(f"{form}/submit", data={"week": "2025-W23", "item": ""}).status_code == 200
    assert [report.lines for report in database.reports()] == [tuple(f"item {i}" for i in range(5))]


def test_the_command_line_lists_what_was_filed_and_refuses_a_bad_fault(
    portal: PortalServer, database: PortalDatabase
) -> None:
    client = signed_in(portal)
    client.post(fill_claim(client).replace("/review", "/submit"))
    module = [sys.executable, "-m", "demo_apps.expense_portal"]
    listed = subprocess.run(
        [*module, "claims", "--db", str(portal.config.database)], capture_output=True, text=True, timeout=30
    )
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(row["number"], row["vendor"]) for row in rows] == [("EXP-000001", PAGE_ONE["vendor"])]
    refused = subprocess.run(
        [*module, "serve", "--db", str(portal.config.database), "--drop-field", "colour"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2 and "unknown claim field 'colour'" in refused.stderr
