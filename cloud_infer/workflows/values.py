"""What the compiler infers from recorded values: parameter types, readable names, patterns.

All of it is deterministic text work (no model calls): a value's type from its shape (money with
optional ¥/$/元 and thousands separators, dates in ISO, ``2026/11/23``, ``2026年11月23日`` or
``Nov 23 2026``, numbers, text), a lower_snake name from a field's label (ASCII only: a label without
ASCII letters falls back to ``field_<n>`` and is kept as the parameter's label), RE2 patterns that
match values of the same shape (an invoice number ``INV-2026-0042`` → ``INV-\\d+-\\d+``) or the same
money amount or day in any usual rendering (``1,280.00`` shown as ``¥1280.00``, ``2026年11月23日``
shown as ``2026-11-23``), and whether a button's name means an irreversible action (submit, pay, send,
delete; 提交, 支付, 付款, 发送, 删除).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Literal

ParamType = Literal["text", "money", "date", "number", "choice", "secret"]
# How a value shown back by an app may differ from what was typed (``Check.compare_as``).
CompareAs = Literal["text", "money", "date"]

_MONEY = re.compile(
    r"^(?:[¥￥$]|RMB|CNY|USD)?\s*-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d{1,2})?\s*(?:元|RMB|CNY|USD)?$",
    re.IGNORECASE,
)
_HAS_CURRENCY = re.compile(r"[¥￥$元]|RMB|CNY|USD", re.IGNORECASE)
_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec"
_DATES = (
    re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$"),
    re.compile(r"^\d{4}/\d{1,2}/\d{1,2}$"),
    re.compile(r"^\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日$"),
    re.compile(rf"^(?:{_MONTHS})[a-z]*\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}$", re.IGNORECASE),
    re.compile(rf"^\d{{1,2}}\s+(?:{_MONTHS})[a-z]*\.?,?\s+\d{{4}}$", re.IGNORECASE),
)
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONEY_LABEL = re.compile(r"amount|total|price|cost|tax|fee|sum|金额|总额|价|税|费", re.IGNORECASE)
_DATE_LABEL = re.compile(r"date|日期", re.IGNORECASE)

_SENSITIVE_EN = re.compile(r"\b(?:submit|pay|payment|send|delete)\b", re.IGNORECASE)
_SENSITIVE_ZH = ("提交", "支付", "付款", "发送", "删除")

# A reference the app made up, e.g. a claim number: letters then digits, or digits with separators.
_TOKEN = re.compile(r"\b[A-Z][A-Z0-9]{0,9}(?:[-_/][A-Z0-9]+)*[-_/]?\d[0-9A-Z]*(?:[-_/][0-9A-Z]+)*\b")
_TOKEN_CONTEXT = re.compile(
    r"(claim|reference|ref|confirmation|order|ticket|report|request|number|no\.?|id|单号|编号|号码)\s*[:：#]?\s*$",
    re.IGNORECASE,
)


def infer_type(value: str, label: str = "") -> ParamType:
    """The parameter type a typed value suggests (``choice``/``secret`` come from the element)."""
    text = value.strip()
    if not text:
        return "text"
    if any(pattern.fullmatch(text) for pattern in _DATES):
        return "date"
    if _MONEY.fullmatch(text):
        plain = _NUMBER.fullmatch(text)
        if (
            not plain
            or _HAS_CURRENCY.search(text)
            or re.search(r"\.\d{2}$", text)
            or _MONEY_LABEL.search(label)
        ):
            return "money"
        return "number"
    return "text"


def snake_name(label: str) -> str:
    """``"Invoice No."`` → ``invoice_no``; empty when the label has no ASCII letters to start with."""
    words = re.findall(r"[a-z0-9]+", label.lower())
    name = "_".join(words)[:64].strip("_")
    while name and not name[0].isalpha():
        name = name[1:].lstrip("_")
    return name


class Names:
    """Unique names over parameters and bindings: ``amount``, ``amount_2``, ``field_1``..."""

    def __init__(self) -> None:
        self._taken: set[str] = set()
        self._fallback = 0

    def take(self, label: str, fallback: str = "field") -> str:
        base = snake_name(label)
        if not base:
            self._fallback += 1
            base = f"{fallback}_{self._fallback}"
        name, n = base, 1
        while name in self._taken:
            n += 1
            suffix = f"_{n}"
            name = base[: 64 - len(suffix)] + suffix
        self._taken.add(name)
        return name


def sensitive(*names: str) -> bool:
    """Does a button or key's element name mean an action that cannot be undone?"""
    return any(_SENSITIVE_EN.search(n) or any(word in n for word in _SENSITIVE_ZH) for n in names if n)


def shape_pattern(value: str) -> str:
    """An RE2 pattern for values shaped like ``value``: letters and separators kept, digit runs as ``\\d+``.

    Empty unless the value is mostly digits (free text has no shape worth matching: read it whole).
    """
    text = value.strip()
    visible = [ch for ch in text if not ch.isspace()]
    digits = sum(ch.isdigit() for ch in visible)
    if not digits or "\n" in text or len(text) > 64 or len(text.split()) > 3 or digits < 0.3 * len(visible):
        return ""  # free text with a number in it ("Reviewed 3 pull requests") has no shape
    parts: list[str] = []
    for run in re.findall(r"\d+|[^\d]+", text):
        if run.isdigit():
            parts.append(r"\d+")
        elif run in (",", "."):
            parts.append(re.escape(run))
        else:
            parts.append(re.escape(run).replace(r"\ ", r"\s*").replace(" ", r"\s*"))
    pattern = "".join(parts)
    # Thousands separators come and go with the amount: 980.00 and 1,280.00 are the same shape.
    return pattern.replace(r"\d+,\d+", r"\d[\d,]*").replace(r"\d+\,\d+", r"\d[\d,]*")


def new_tokens(after: str, before: str, exclude: set[str]) -> list[tuple[str, str]]:
    """(token, the words before it) for reference-like tokens in ``after`` that ``before`` lacks."""
    found: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(after):
        token = match.group(0)
        if token in before or any(token in value or value == token for value in exclude if value):
            continue
        if not any(ch.isalpha() for ch in token) and len(token) < 6:
            continue  # a bare small number (a count, a year) is no reference
        line_start = after.rfind("\n", 0, match.start()) + 1
        context = after[line_start : match.start()]
        found.append((token, context))
    # Tokens introduced by "Claim number:" and the like first.
    found.sort(key=lambda item: 0 if _TOKEN_CONTEXT.search(item[1]) else 1)
    return found


def context_label(context: str) -> str:
    """``"Your claim number: "`` → ``Claim number``: the words that introduce a token."""
    words = re.sub(r"[:：#\s]+$", "", context).strip()
    words = words.split(".")[-1].strip()[-48:]
    return re.sub(r"^(?:your|the)\s+", "", words, flags=re.IGNORECASE)


def money_amount(value: str) -> Decimal | None:
    """The amount a money value means (``¥1,280.50`` → 1280.50); None when it is not money."""
    text = value.strip()
    if not _MONEY.fullmatch(text):
        return None
    digits = re.sub(r"[^\d.\-]", "", text)
    try:
        return Decimal(digits)
    except InvalidOperation:
        return None


def calendar_day(value: str) -> date | None:
    """The day a date value means, in any of the shapes ``infer_type`` knows; None otherwise."""
    text = value.strip()
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    try:
        if any(pattern.fullmatch(text) for pattern in _DATES[:3]):
            return date(numbers[0], numbers[1], numbers[2])
        month = re.search(_MONTHS, text, re.IGNORECASE)
        if month is not None and any(pattern.fullmatch(text) for pattern in _DATES[3:]):
            day, year = numbers  # the English shapes: day before year either way
            return date(year, _MONTH_NAMES.index(month.group(0).lower()[:3]) + 1, day)
    except (ValueError, IndexError):
        return None
    return None


def rendering_pattern(value: str, compare_as: CompareAs) -> str:
    """An RE2 pattern that finds ``value`` shown in any usual rendering of the same amount or day, its
    first group being what is shown; empty for text, or a value that is not money (a date)."""
    if compare_as == "money":
        amount = money_amount(value)
        return _money_pattern(amount) if amount is not None else ""
    if compare_as == "date":
        day = calendar_day(value)
        return _date_pattern(day) if day is not None else ""
    return ""


def _money_pattern(amount: Decimal) -> str:
    """``1280.5`` → with or without thousands separators and a currency sign, cents as ``.50`` or ``.5``
    (none at all for a whole amount); never part of a longer number."""
    sign = "-" if amount < 0 else ""
    whole, _, cents = f"{abs(amount):.2f}".partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        whole, groups = whole[:-3], [whole[-3:], *groups]
    integer = "[,，]?".join([whole, *groups])
    if cents == "00":
        fraction = r"(?:\.0{1,2})?"
    elif cents.endswith("0"):
        fraction = rf"\.{cents[0]}0?"
    else:
        fraction = rf"\.{cents}"
    # Not inside a longer number: 80.00 is not the end of 1280.00, nor 1280 the start of 1280.50.
    return rf"(?:^|[^\d.,，])({sign}{integer}{fraction})(?:$|[^\d.,，]|[.,，](?:\D|$))"


def _date_pattern(day: date) -> str:
    """The day as ISO, ``2026/11/23``, ``2026.11.23``, ``2026年11月23日`` (zero-padded or not), or with
    the month's English name before or after the day; never part of a longer number."""
    y, m, d = day.year, f"0?{day.month}", f"0?{day.day}"
    month = _MONTH_NAMES[day.month - 1]
    numeric = rf"{y}\s*[-/.年]\s*{m}\s*[-/.月]\s*{d}(?:\s*日)?"
    named = (
        rf"(?i:{month}[a-z]*\.?\s+{d}(?:st|nd|rd|th)?,?\s+{y}|{d}(?:st|nd|rd|th)?\s+{month}[a-z]*\.?,?\s+{y})"
    )
    return rf"(?:^|\D)({numeric}|{named})(?:\D|$)"
