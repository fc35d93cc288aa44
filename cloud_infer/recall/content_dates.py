"""Dates a text is about, as search tokens, so a query's date can match the content as well as the time
the user saw it.

An invoice dated 2026-03-05 seen on 3月20日 is about 3月5日: "3月5日的收据" must find it although it was
not on screen that day. The index holds each row's dates as tokens beside its words (``text.tokenize``):
``d20260305`` for a day, ``m202603`` for a month, and, since a date on screen often has no year
("3月5日", "Mar 5"), the year-free ``md0305`` and ``mo03`` as well. A query's date window turns into the
same tokens (``window_tokens``), and search adds them to its words and boosts the rows whose content
has them (``RecallService.search``).

Only absolute dates are read from content (ISO and slash dates, 2026年3月5日, 3月5日, 3月份, March 5 2026,
5 Mar, September 2026); "today" or "Monday" on a page is relative to a day the text does not give.
Slashed dates without a year are month first (03/05), as ``query_dates`` reads them.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta

# A window longer than this names a period, not days: it gives month tokens, or none.
_MAX_DAYS = 31
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month_name>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_PATTERNS = [
    # 2026-03-05, 2026/3/5, 2026.03.05, 2026年3月5日
    re.compile(_YEAR + r"\s*(?:[-/.]|年)\s*(?P<month>\d{1,2})\s*(?:[-/.]|月)\s*(?P<day>\d{1,2})(?!\d)"),
    # 03/05/2026 (month first)
    re.compile(r"(?<!\d)(?P<month>\d{1,2})/(?P<day>\d{1,2})/" + _YEAR + r"(?!\d)"),
    # 3月5日, 3月5号
    re.compile(r"(?<![\d年])(?P<month>\d{1,2})\s*月\s*(?P<day>\d{1,2})\s*[日号]"),
    # 2026年3月, 3月份
    re.compile(_YEAR + r"\s*年\s*(?P<month>\d{1,2})\s*月(?!\s*\d)"),
    re.compile(r"(?<![\d年])(?P<month>\d{1,2})\s*月份"),
    # March 5, 2026 / March 5th / Mar 5
    re.compile(
        r"\b" + _MONTH + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s+" + _YEAR + r"\b)?", re.IGNORECASE
    ),
    # 5 March 2026 / 5 Mar
    re.compile(
        r"\b(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+" + _MONTH + r"\b(?:,?\s+" + _YEAR + r"\b)?", re.IGNORECASE
    ),
    # September 2026, in September
    re.compile(r"\b" + _MONTH + r",?\s+" + _YEAR + r"\b", re.IGNORECASE),
    re.compile(r"\bin\s+" + _MONTH + r"\b", re.IGNORECASE),
]


def dates_in(text: str) -> set[str]:
    """The date tokens of every absolute date in ``text``."""
    normalized = unicodedata.normalize("NFKC", text)
    tokens: set[str] = set()
    for pattern in _PATTERNS:
        for match in pattern.finditer(normalized):
            found = match.groupdict()
            month = _MONTHS[found["month_name"].lower()] if found.get("month_name") else int(found["month"])
            year = int(found["year"]) if found.get("year") else None
            day = int(found["day"]) if found.get("day") else None
            if not 1 <= month <= 12 or (day is not None and not _valid(year, month, day)):
                continue
            tokens.add(f"mo{month:02d}")
            if year is not None:
                tokens.add(f"m{year}{month:02d}")
            if day is not None:
                tokens.add(f"md{month:02d}{day:02d}")
                if year is not None:
                    tokens.add(f"d{year}{month:02d}{day:02d}")
    return tokens


def window_tokens(start: datetime, end: datetime) -> set[str]:
    """The tokens of the days of ``[start, end)`` (a window of up to a month), else of its months."""
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    if (last - first).days < _MAX_DAYS and not _whole_months(first, last):
        tokens: set[str] = set()
        day = first
        while day <= last:
            tokens |= {f"d{day:%Y%m%d}", f"md{day:%m%d}"}
            day += timedelta(days=1)
        return tokens
    months = (last.year - first.year) * 12 + last.month - first.month + 1
    if months > 3:  # a year, or most of one: too broad to say what a text is about
        return set()
    tokens = set()
    year, month = first.year, first.month
    for _ in range(months):
        tokens |= {f"m{year}{month:02d}", f"mo{month:02d}"}
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return tokens


def _whole_months(first: date, last: date) -> bool:
    return first.day == 1 and (last + timedelta(days=1)).day == 1


def _valid(year: int | None, month: int, day: int) -> bool:
    try:
        date(year or 2024, month, day)  # a leap year, for a yearless 2月29日
    except ValueError:
        return False
    return True
