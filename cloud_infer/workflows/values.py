"""What the compiler infers from recorded values: parameter types, readable names, patterns.

All of it is deterministic text work (no model calls): a value's type from its shape (money with
optional ¥/$/元 and thousands separators, dates in ISO, ``2026/11/23``, ``2026年11月23日`` or
``Nov 23 2026``, numbers, text), a lower_snake name from a field's label (ASCII only: a label without
ASCII letters falls back to ``field_<n>`` and is kept as the parameter's label), RE2 patterns that
match values of the same shape (an invoice number ``INV-2026-0042`` → ``INV-\\d+-\\d+``), and whether a
button's name means an irreversible action (submit, pay, send, delete; 提交, 支付, 付款, 发送, 删除).
"""

from __future__ import annotations

import re
from typing import Literal

ParamType = Literal["text", "money", "date", "number", "choice", "secret"]

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
