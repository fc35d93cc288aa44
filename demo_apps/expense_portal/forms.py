"""Checking and normalising what the form pages post: a bad value is an error shown beside its field."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from demo_apps.expense_portal.config import CATEGORIES, MAX_ITEM_CHARS, REPORT_LINES

_DATE = re.compile(r"^\s*(\d{4})\s*(?:-|/|年)\s*(\d{1,2})\s*(?:-|/|月)\s*(\d{1,2})\s*日?\s*$")
_MONEY = re.compile(r"^\s*(?:[¥￥$€]|RMB|CNY)?\s*(\d{1,3}(?:,\d{3})+|\d+)(\.\d{1,2})?\s*$")
_INVOICE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/ -]{0,63}$")
_WEEK = re.compile(r"^\s*(\d{4})-W(\d{2})\s*$")
CATEGORY_VALUES = frozenset(value for value, _ in CATEGORIES)


def normalise_date(text: str) -> str:
    """2025-03-14, 2025/3/14 or 2025年3月14日 as 2025-03-14; ValueError otherwise."""
    match = _DATE.match(text)
    if match is None:
        raise ValueError("a date like 2025-03-14 or 2025年3月14日")
    year, month, day = (int(part) for part in match.groups())
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        raise ValueError("not a real date") from None


def normalise_money(text: str) -> str:
    """1,234.5 or ¥1234.50 as 1234.50; ValueError otherwise."""
    match = _MONEY.match(text)
    if match is None:
        raise ValueError("an amount like 1234.50")
    try:
        value = Decimal(match.group(1).replace(",", "") + (match.group(2) or ""))
    except InvalidOperation:
        raise ValueError("an amount like 1234.50") from None
    return f"{value:.2f}"


def check_page_one(form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(clean values, errors by field) of page 1: vendor, invoice number, invoice date."""
    values = {name: form.get(name, "").strip() for name in ("vendor", "invoice_number", "invoice_date")}
    errors: dict[str, str] = {}
    if not values["vendor"] or len(values["vendor"]) > 200:
        errors["vendor"] = "Required, at most 200 characters / 必填"
    if not _INVOICE_NUMBER.match(values["invoice_number"]):
        errors["invoice_number"] = "Letters, digits and - / only / 仅限字母、数字"
    try:
        values["invoice_date"] = normalise_date(values["invoice_date"])
    except ValueError as exc:
        errors["invoice_date"] = f"Expected {exc} / 日期格式错误"
    return values, errors


def check_page_two(form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(clean values, errors by field) of page 2: amount, tax, category, cost centre."""
    values = {name: form.get(name, "").strip() for name in ("amount", "tax", "category", "cost_centre")}
    errors: dict[str, str] = {}
    for name in ("amount", "tax"):
        try:
            values[name] = normalise_money(values[name])
        except ValueError as exc:
            errors[name] = f"Expected {exc} / 金额格式错误"
    if not errors and Decimal(values["tax"]) > Decimal(values["amount"]):
        errors["tax"] = "Tax cannot exceed the amount / 税额不能大于金额"
    if "amount" not in errors and Decimal(values["amount"]) <= 0:
        errors["amount"] = "Must be more than 0 / 必须大于0"
    if values["category"] not in CATEGORY_VALUES:
        errors["category"] = "Choose a category / 请选择类别"
    if not values["cost_centre"] or len(values["cost_centre"]) > 32:
        errors["cost_centre"] = "Required, at most 32 characters / 必填"
    return values, errors


def check_item(form: dict[str, str], added: int) -> tuple[str, dict[str, str]]:
    """(the item, errors by field) of a weekly report's Add: one more item after ``added`` ones."""
    item = form.get("item", "").strip()
    errors: dict[str, str] = {}
    if not item:
        errors["item"] = "Type an item first / 请先填写事项"
    elif len(item) > MAX_ITEM_CHARS:
        errors["item"] = f"At most {MAX_ITEM_CHARS} characters an item / 每项最多{MAX_ITEM_CHARS}字"
    elif added >= REPORT_LINES:
        errors["item"] = f"At most {REPORT_LINES} items a report / 每份周报最多{REPORT_LINES}项"
    return item, errors


def check_report(form: dict[str, str], added: int) -> tuple[str, dict[str, str]]:
    """(week, errors by field) of a weekly report's Submit, with ``added`` items in its draft."""
    errors: dict[str, str] = {}
    week = form.get("week", "").strip()
    match = _WEEK.match(week)
    if match is None or not 1 <= int(match.group(2)) <= 53:
        errors["week"] = "A week like 2025-W23 / 周次格式如 2025-W23"
    if form.get("item", "").strip():
        # Typed but never added: filing without it, or with it, would each surprise someone.
        errors["item"] = "Add this item or clear it first / 请先添加或清空此项"
    elif not added:
        errors["item"] = "Add at least one item / 至少添加一项"
    return week, errors
