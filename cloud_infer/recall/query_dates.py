"""Date and time phrases in Recall search queries, Chinese and English, turned into a time window.

``parse_query`` finds the phrases with a table of regular expressions (``_RULES``, one resolver per row),
narrows them into one half-open window ``[start, end)`` in the time zone of ``now`` and returns the rest of
the query as the text to search. No model, no network, no dateparser: its ``search_dates`` takes 20-100 ms
a call, returns instants rather than windows and misses 两小时前 and 上周二.

Weeks start on Monday; a day is 00:00-24:00 local time; "today" is the date of ``now``.

====================================================  =======================================
Phrases                                               Window
====================================================  =======================================
today 今天 今日, yesterday 昨天 昨日, tomorrow 明天,  that day
the day before yesterday 前天, 大前天, 后天
morning 上午 早上 06-12, noon 中午 11-14,             that part of the day named; alone, the
afternoon 下午 12-18, evening night 晚上 夜里 18-24,  latest one that has begun
傍晚 17-20, 凌晨 00-06; 今早 今晚 昨晚 昨夜 明早,
tonight, this morning, last night
Tuesday, on Tuesday, 周二 星期二 礼拜二               the latest Tuesday on or before today
last Tuesday / next Tuesday                           the latest before / first after today
this Tuesday 这周二 本周二, 上周二 上星期二,          Tuesday of this / the previous / next
上上周二, 下周二                                      week (上上: two weeks back)
at 3pm, 3:30 pm, 15:00, 下午3点, 3点半, 三点十分      [t, t + 1 h) on the day named, else the
                                                      latest such time that has begun
N days/weeks/months/years ago, 三天前 两周前          that calendar day / week / month / year
三个月前 一年前
N minutes/hours ago, 十分钟前 两小时前 半小时前       now - N units, ± half that (at least
一个半小时前                                          1 minute)
in the last N units, past 2 hours, 最近三天           [now - N units, now)
过去两小时 近一周
this/last/next week/month/year, 这周 本周 上周        that calendar period
上个星期 下周 本月 上个月 上上个月 今年 去年 前年
weekend, this/last weekend, 周末 上周末               Saturday and Sunday; alone, the latest
                                                      one that has begun
2026-11-03, 2026/11/03, 11/03, on 3/4 (month first),  that day; without a year, the latest
November 3rd, 3 Nov 2026, 11月3日 11月3号 十一月三号  one on or before today
in November, Nov 2026, November's, 11月 11月份,       that month (without a year, the latest
2026年11月, in 2025, 2025年                            begun) / that year
====================================================  =======================================

Combining: periods (weeks, months, years, ranges) intersect, and a bare weekday or a date without a
year resolves inside them (上周 周二, 去年 11月3日). A single day is narrowed by a part of day, then by
a clock time, which the part of day can move to pm (上周二下午, yesterday at 3pm, 昨天下午3点 = 15:00);
neither narrows a period longer than a day. In a contradiction the day named beats the period, and
the first day beats later ones.

Matching: English is case-insensitive and matched as whole words, so "satisfied" holds no "sat" and
"monday.com" or "user@sunday" no weekday; the weekday abbreviations mon ... sun count only after
last/this/next/on, and a month name only with a day, a year or "in". A Chinese hour with nothing but
点 (3点) counts only right after another date phrase (昨天3点), since 3点 also means "three points".
A bare Chinese hour 1-6 is pm (三点 = 15:00; small hours take 凌晨). A month/day with a slash needs
two digits each, a year or "on" (3/4 is a fraction). A 的 right after a phrase is dropped with it
(昨天的报销单 -> 报销单).
"""

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

__all__ = ["ParsedQuery", "parse_query"]

_Window = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A search query split into the words to search for and the time window its date phrases name."""

    text: str  # the query with the date/time phrases removed, whitespace-normalised
    start: datetime | None  # inclusive, in the zone of ``now``
    end: datetime | None  # exclusive
    phrases: tuple[str, ...]  # the phrases recognised, as they appeared, in query order


@dataclass(frozen=True, slots=True)
class _Meaning:
    """What one phrase constrains; a phrase sets at least one field."""

    window: _Window | None = None
    period_at: Callable[[date], _Window] | None = None  # a period relative to the reference day
    day: Callable[[date], date] | None = None  # given the reference day: today or the last day of the periods
    part: tuple[int, int] | None = None  # hours [from, to)
    clock: tuple[int, int] | None = None  # hour, minute
    small_hour_is_pm: bool = False  # a Chinese hour said without a part of day
    weak: bool = False  # counts only right after another phrase


_Handler = Callable[[re.Match[str], datetime], _Meaning]

_MORNING, _NOON, _AFTERNOON, _EVENING, _DUSK, _SMALL_HOURS = (
    (6, 12),
    (11, 14),
    (12, 18),
    (18, 24),
    (17, 20),
    (0, 6),
)
_PARTS = {
    **dict.fromkeys(("morning", "上午", "早上", "早晨", "清晨", "早"), _MORNING),
    **dict.fromkeys(("noon", "midday", "lunchtime", "中午", "午间"), _NOON),
    **dict.fromkeys(("afternoon", "下午", "午后"), _AFTERNOON),
    **dict.fromkeys(("evening", "night", "晚上", "晚间", "夜里", "夜间", "晚", "夜"), _EVENING),
    "傍晚": _DUSK,
    "凌晨": _SMALL_HOURS,
}
_DAY_OFFSETS = {
    **dict.fromkeys(("today", "tonight", "this", "今天", "今日", "今"), 0),
    **dict.fromkeys(("yesterday", "last", "昨天", "昨日", "昨"), -1),
    **dict.fromkeys(("day before yesterday", "前天"), -2),
    "大前天": -3,
    **dict.fromkeys(("tomorrow", "明天", "明"), 1),
    **dict.fromkeys(("day after tomorrow", "后天"), 2),
}
_RELATIVE = {"上上": -2, "上": -1, "这": 0, "本": 0, "this": 0, "下": 1, "last": -1, "next": 1}
_YEAR_OFFSETS = {"大前年": -3, "前年": -2, "去年": -1, "今年": 0, "明年": 1}
_WEEKDAYS = {
    **{name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{c: i for i, c in enumerate("一二三四五六日")},
    **{str(i + 1): i for i in range(7)},
    "天": 6,
}
_MONTHS = {
    name: i + 1
    for i, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_UNITS = {
    **dict.fromkeys(("minute", "min", "分钟"), "minutes"),
    **dict.fromkeys(("hour", "hr", "小时", "钟头"), "hours"),
    **dict.fromkeys(("day", "天", "日"), "days"),
    **dict.fromkeys(("week", "wk", "周", "星期", "礼拜"), "weeks"),
    **dict.fromkeys(("month", "月"), "months"),
    **dict.fromkeys(("year", "yr", "年"), "years"),
}
_PERIOD_UNITS = {
    **dict.fromkeys(("week", "周", "星期", "礼拜"), "weeks"),
    **dict.fromkeys(("month", "月"), "months"),
    "year": "years",
    **dict.fromkeys(("weekend", "周末", "星期末", "礼拜末"), "weekend"),
}
_ZERO = "\u3007"  # the ideographic zero, escaped because it looks like a Latin O
_CN_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {_ZERO: 0, "两": 2}
_EN_NUMBER_WORDS = (
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
)
_EN_NUMBERS = {"a": 1, "an": 1, "a couple of": 2} | {w: i for i, w in enumerate(_EN_NUMBER_WORDS, start=1)}

# English words must not touch letters, digits or the characters of addresses and file names.
_L = r"(?<![A-Za-z0-9_.@/:-])"
_R = r"(?![A-Za-z0-9_@/-]|[.:][A-Za-z0-9])"
_EN_NUM = rf"(?P<n>\d{{1,3}}|a\s+couple\s+of|an?|{'|'.join(_EN_NUMBER_WORDS)})"
_EN_UNIT = r"(?P<unit>minute|min|hour|hr|day|week|wk|month|year|yr)s?"
_EN_MONTH = (
    r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_FULL_MONTHS = "january|february|march|april|june|july|august|september|october|november|december"
_EN_DAY = r"(?P<d>\d{1,2})(?:st|nd|rd|th)?"
_EN_YEAR = r"(?:,?\s+(?P<y>\d{4}))"
_CN_NUMERALS = f"零{_ZERO}一二两三四五六七八九十"
_CN_NUM = rf"[0-9]{{1,3}}|[{_CN_NUMERALS}]{{1,3}}"
_CN_UNIT = r"(?P<unit>分钟|小时|钟头|天|日|周|星期|礼拜|月|年)"
_CN_REL = r"(?P<q>上上|上|这|本|下)个?"
_CN_PART = r"上午|早上|早晨|清晨|中午|午间|下午|午后|傍晚|晚上|晚间|夜里|夜间|凌晨"
_CN_YMD = r"(?<![0-9])(?:(?P<y>\d{4})年)?(?P<m>\d{1,2}|[一二三四五六七八九十]{1,3})月"


def _number(word: str) -> int:
    """An ASCII, English or Chinese numeral under a thousand, or ``ValueError``."""
    word = " ".join(word.lower().split())
    if word in _EN_NUMBERS:
        return _EN_NUMBERS[word]
    if word.isdecimal():
        return int(word)
    try:
        tens, ten, ones = word.partition("十")
        if not ten:
            return int("".join(str(_CN_DIGITS[c]) for c in word))
        return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[ones] if ones else 0)
    except KeyError as exc:
        raise ValueError(f"not a numeral: {word!r}") from exc


def _midnight(day: date, now: datetime) -> datetime:
    return datetime.combine(day, time(), tzinfo=now.tzinfo)


def _days(first: date, stop: date, now: datetime) -> _Window:
    return _midnight(first, now), _midnight(stop, now)


def _week(today: date, offset: int, now: datetime, first: int = 0, length: int = 7) -> _Window:
    monday = today - timedelta(days=today.weekday()) + timedelta(weeks=offset)
    return _days(monday + timedelta(days=first), monday + timedelta(days=first + length), now)


def _weekend(today: date, offset: int, now: datetime) -> _Window:
    return _week(today, offset, now, first=5, length=2)


def _month(year: int, month: int, offset: int, now: datetime) -> _Window:
    y, m = divmod(year * 12 + month - 1 + offset, 12)
    ny, nm = divmod(y * 12 + m + 1, 12)
    return _days(date(y, m + 1, 1), date(ny, nm + 1, 1), now)


def _year(year: int, now: datetime) -> _Window:
    return _days(date(year, 1, 1), date(year + 1, 1, 1), now)


def _instant_before(now: datetime, delta: timedelta) -> datetime:
    # In UTC, so that a daylight-saving change in between does not shift the instant.
    return (now.astimezone(UTC) - delta).astimezone(now.tzinfo)


def _months_before(now: datetime, months: int) -> datetime:
    y, m = divmod(now.year * 12 + now.month - 1 - months, 12)
    return now.replace(year=y, month=m + 1, day=min(now.day, monthrange(y, m + 1)[1]))


def _fixed(day: date) -> Callable[[date], date]:
    return lambda _ref: day


def _latest_date(month: int, day: int) -> Callable[[date], date]:
    date(2000, month, day)  # a leap year: raises ValueError for a day no year has

    def resolve(ref: date) -> date:
        year = ref.year if (month, day) <= (ref.month, ref.day) else ref.year - 1
        while True:  # only 29 February needs more than one step back
            try:
                return date(year, month, day)
            except ValueError:
                year -= 1

    return resolve


def _latest_weekday(weekday: int) -> Callable[[date], date]:
    return lambda ref: ref - timedelta(days=(ref.weekday() - weekday) % 7)


def _day_meaning(offset: int, now: datetime, part: str | None = None) -> _Meaning:
    return _Meaning(day=_fixed(now.date() + timedelta(days=offset)), part=_PARTS[part] if part else None)


def _en_day(m: re.Match[str], now: datetime) -> _Meaning:
    word = " ".join(m["w"].lower().removeprefix("the").split())
    return _day_meaning(_DAY_OFFSETS[word], now, "evening" if word == "tonight" else None)


def _en_day_part(m: re.Match[str], now: datetime) -> _Meaning:
    return _day_meaning(_DAY_OFFSETS[m["w"].lower()], now, m["p"].lower())


def _part(m: re.Match[str], now: datetime) -> _Meaning:
    return _Meaning(part=_PARTS[m["p"].lower()])


def _cn_day(m: re.Match[str], now: datetime) -> _Meaning:
    return _day_meaning(_DAY_OFFSETS[m["w"]], now, m["p"])


def _weekday(m: re.Match[str], now: datetime) -> _Meaning:
    weekday, today = _WEEKDAYS[m["wd"][:3].lower()], now.date()
    match (m["q"] or "").lower():
        case "" | "on":
            return _Meaning(day=_latest_weekday(weekday))
        case "last":
            return _Meaning(day=_fixed(today - timedelta(days=(today.weekday() - weekday - 1) % 7 + 1)))
        case "next":
            return _Meaning(day=_fixed(today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)))
        case relative:
            return _Meaning(day=_fixed(_week(today, _RELATIVE[relative], now, first=weekday)[0].date()))


def _cn_weekday(m: re.Match[str], now: datetime) -> _Meaning:
    if m["unit"] == "周" and m["wd"] == "天":
        raise ValueError("周天 is too often part of 周天气")
    return _weekday(m, now)


def _period(m: re.Match[str], now: datetime) -> _Meaning:
    unit, today = _PERIOD_UNITS[m["unit"].lower()], now.date()
    offset = _RELATIVE[m["q"].lower()] if m["q"] else None
    match unit:
        case "weekend" if offset is None:
            return _Meaning(window=_weekend(today, 0 if today.weekday() >= 5 else -1, now))
        case "weekend":
            return _Meaning(window=_weekend(today, offset or 0, now))
        case "weeks":
            return _Meaning(window=_week(today, offset or 0, now))
        case "months":
            return _Meaning(window=_month(today.year, today.month, offset or 0, now))
        case _:
            return _Meaning(window=_year(today.year + (offset or 0), now))


def _cn_year(m: re.Match[str], now: datetime) -> _Meaning:
    return _Meaning(window=_year(now.year + _YEAR_OFFSETS[m["w"]], now))


def _cn_ago(m: re.Match[str], now: datetime) -> _Meaning:
    if m["unit"] == "月" and not m["ge"]:
        raise ValueError("3月前 means before March")
    return _ago(m, now)


def _ago(m: re.Match[str], now: datetime) -> _Meaning:
    count = (_number(m["n"]) if m["n"] else 0) + (0.5 if m["half"] else 0)
    unit, today = _UNITS[m["unit"].lower()], now.date()
    if unit == "hours":  # 一个半小时 is 90 minutes
        count, unit = count * 60, "minutes"
    if unit == "minutes":
        offset = timedelta(minutes=count)
        slack = max(timedelta(minutes=1), offset / 2)
        return _Meaning(window=(_instant_before(now, offset + slack), _instant_before(now, offset - slack)))
    if count != int(count):
        raise ValueError("half a day, week, month or year ago is no calendar period")
    whole = int(count)
    match unit:
        case "days":
            return _Meaning(day=_fixed(today - timedelta(days=whole)))
        case "weeks":
            return _Meaning(window=_week(today, -whole, now))
        case "months":
            return _Meaning(window=_month(today.year, today.month, -whole, now))
        case _:
            return _Meaning(window=_year(today.year - whole, now))


def _last_n(m: re.Match[str], now: datetime) -> _Meaning:
    count, unit = _number(m["n"]), _UNITS[m["unit"].lower()]
    if unit in ("months", "years"):
        start = _months_before(now, count * (12 if unit == "years" else 1))
    else:
        start = _instant_before(now, timedelta(**{unit: count}))
    return _Meaning(window=(start, now))


def _date(m: re.Match[str], now: datetime) -> _Meaning:
    month = _MONTHS[m["month"][:3].lower()] if "month" in m.groupdict() else _number(m["m"])
    day = _number(m["d"])
    if m["y"]:
        return _Meaning(day=_fixed(date(int(m["y"]), month, day)))
    return _Meaning(day=_latest_date(month, day))


def _slash_date(m: re.Match[str], now: datetime) -> _Meaning:
    if not (m["y"] or m["on"] or len(m["m"]) == len(m["d"]) == 2):
        raise ValueError("3/4 is more often a fraction than a date")
    return _date(m, now)


def _month_only(m: re.Match[str], now: datetime) -> _Meaning:
    month = _MONTHS[m["month"][:3].lower()] if "month" in m.groupdict() else _number(m["m"])
    if not 1 <= month <= 12:
        raise ValueError(f"no month {month}")
    if m.groupdict().get("y"):
        return _Meaning(window=_month(int(m["y"]), month, 0, now))
    return _Meaning(
        period_at=lambda ref: _month(ref.year - 1 if month > ref.month else ref.year, month, 0, now)
    )


def _year_only(m: re.Match[str], now: datetime) -> _Meaning:
    return _Meaning(window=_year(int(m["y"]), now))


def _en_clock(m: re.Match[str], now: datetime) -> _Meaning:
    hour, minute = int(m["h"]), int(m["min"] or 0)
    if ampm := (m["ampm"] or "").lower():
        if not 1 <= hour <= 12:
            raise ValueError(f"no hour {hour} {ampm}")
        hour = hour % 12 + (12 if ampm.startswith("p") else 0)
    return _Meaning(clock=_valid_clock(hour, minute))


def _cn_clock(m: re.Match[str], now: datetime) -> _Meaning:
    minute: int | None = None
    if m["half"]:
        minute = 30
    elif m["quarter"]:
        minute = 15 if m["quarter"] == "一刻" else 45
    elif m["min"]:
        minute = _number(m["min"])
    clock = _valid_clock(_number(m["h"]), minute or 0)
    precise = bool(m["part"] or minute is not None or m["tail"])
    part = _PARTS[m["part"]] if m["part"] else None
    return _Meaning(part=part, clock=clock, small_hour_is_pm=part is None, weak=not precise)


def _valid_clock(hour: int, minute: int) -> tuple[int, int]:
    if hour > 24 or minute > 59:
        raise ValueError(f"no time {hour}:{minute:02}")
    return hour, minute


def _rule(pattern: str, handler: _Handler) -> tuple[re.Pattern[str], _Handler]:
    return re.compile(pattern, re.IGNORECASE), handler


_RULES = (
    # English
    _rule(
        rf"{_L}(?P<w>(?:the\s+)?day\s+(?:before\s+yesterday|after\s+tomorrow)|today|tonight|yesterday|tomorrow)"
        rf"(?:['\u2019]s)?{_R}",
        _en_day,
    ),
    _rule(
        rf"{_L}(?P<w>this|last|yesterday|tomorrow)\s+(?P<p>morning|afternoon|evening|night)(?:['\u2019]s)?{_R}",
        _en_day_part,
    ),
    _rule(
        rf"{_L}(?:(?:in|during)\s+the\s+|at\s+)?(?P<p>morning|noon|midday|lunchtime|afternoon|evening|night){_R}",
        _part,
    ),
    _rule(
        rf"{_L}(?:(?P<q>last|this|next|on)\s+)?(?P<wd>monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
        rf"{_R}",
        _weekday,
    ),
    _rule(rf"{_L}(?P<q>last|this|next|on)\s+(?P<wd>mon|tues?|wed|thu(?:rs?)?|fri|sat|sun)\.?{_R}", _weekday),
    _rule(
        rf"{_L}(?:(?:in|during|over)\s+)?(?:the\s+)?(?P<q>this|last|next)\s+(?P<unit>week|month|year|weekend)"
        rf"(?:['\u2019]s)?{_R}",
        _period,
    ),
    _rule(rf"{_L}(?:(?:on|over|during|at)\s+)?(?:the\s+)?(?P<q>)(?P<unit>weekend){_R}", _period),
    _rule(rf"{_L}{_EN_NUM}\s+{_EN_UNIT}\s+(?:and\s+a\s+(?P<half>half)\s+)?ago{_R}", _ago),
    _rule(rf"{_L}(?P<n>)(?P<half>(?:a\s+)?half\s+an?\s+)(?P<unit>hour)\s+ago{_R}", _ago),
    _rule(
        rf"{_L}(?:(?:in|over|during|within)\s+)?(?:the\s+)?(?:last|past)\s+{_EN_NUM}\s+{_EN_UNIT}{_R}",
        _last_n,
    ),
    _rule(rf"{_L}(?:on\s+)?{_EN_MONTH}\s+{_EN_DAY}{_EN_YEAR}?{_R}", _date),
    _rule(rf"{_L}(?:on\s+)?(?:the\s+)?{_EN_DAY}\s+(?:of\s+)?{_EN_MONTH}{_EN_YEAR}?{_R}", _date),
    _rule(rf"{_L}(?:on\s+)?(?P<y>\d{{4}})(?P<sep>[-/.])(?P<m>\d{{1,2}})(?P=sep)(?P<d>\d{{1,2}}){_R}", _date),
    _rule(rf"{_L}(?P<on>on\s+)?(?P<m>\d{{1,2}})/(?P<d>\d{{1,2}})(?:/(?P<y>\d{{4}}))?{_R}", _slash_date),
    _rule(rf"{_L}in\s+{_EN_MONTH}{_EN_YEAR}?{_R}", _month_only),
    _rule(rf"{_L}{_EN_MONTH}{_EN_YEAR}{_R}", _month_only),
    # "September's bill": a full month name with a possessive (May's is more often a name).
    _rule(rf"{_L}(?P<month>{_FULL_MONTHS})['\u2019]s{_R}", _month_only),
    _rule(rf"{_L}in\s+(?P<y>(?:19|20)\d\d){_R}", _year_only),
    _rule(
        rf"{_L}(?:(?:at|around)\s+)?(?P<h>\d{{1,2}})(?::(?P<min>\d\d))?\s*(?P<ampm>a\.?m\.?|p\.?m\.?){_R}",
        _en_clock,
    ),
    _rule(rf"{_L}(?:(?:at|around)\s+)?(?P<h>[01]?\d|2[0-3]):(?P<min>[0-5]\d)(?P<ampm>){_R}", _en_clock),
    # Chinese: no word boundaries to lean on, so numerals and 每 before a phrase are excluded instead.
    _rule(r"(?P<w>大前天|前天|昨天|昨日|今天|今日|明天|后天)(?P<p>)", _cn_day),
    _rule(r"(?P<w>今|昨|明)(?P<p>早上|早晨|早|晚上|晚|夜里|夜)", _cn_day),
    _rule(rf"(?P<p>{_CN_PART})", _part),
    _rule(
        rf"(?<![0-9{_CN_NUMERALS}每])(?:{_CN_REL})?(?P<unit>周|星期|礼拜)(?P<wd>[一二三四五六日天1-7])(?!次)",
        _cn_weekday,
    ),
    _rule(rf"{_CN_REL}(?P<unit>(?:周|星期|礼拜)末?)", _period),
    _rule(r"(?P<q>)(?P<unit>周末)", _period),
    _rule(rf"{_CN_REL}(?P<unit>月)", _period),
    _rule(r"(?P<w>大前年|前年|去年|今年|明年)", _cn_year),
    _rule(rf"(?P<n>{_CN_NUM})(?P<ge>个)?(?P<half>半)?{_CN_UNIT}(?:之|以)?前", _cn_ago),
    _rule(r"(?P<n>)(?P<half>半)个?(?P<unit>小时|钟头)(?:之|以)?前", _ago),
    _rule(rf"(?:最近|过去|近)的?(?P<n>{_CN_NUM})个?{_CN_UNIT}(?:内|里|以来)?", _last_n),
    _rule(rf"{_CN_YMD}(?P<d>\d{{1,2}}|[一二三四五六七八九十]{{1,3}})[日号號]", _date),
    _rule(rf"{_CN_YMD}份?(?![0-9{_CN_NUMERALS}日号號前后底初中])", _month_only),
    _rule(rf"(?<![0-9])(?P<y>\d{{4}})年(?![0-9{_CN_NUMERALS}前后])", _year_only),
    _rule(
        rf"(?P<part>{_CN_PART})?(?<![0-9{_CN_NUMERALS}])(?P<h>\d{{1,2}}|[零一二两三四五六七八九十]{{1,3}})"
        r"[点點时時](?:(?P<half>半)|(?P<quarter>[一三]刻)|(?P<min>\d{1,2}|[零一二三四五六七八九十]{1,3})分?)?"
        r"(?P<tail>钟|整|左右)?",
        _cn_clock,
    ),
)


def parse_query(query: str, now: datetime) -> ParsedQuery:
    """Split ``query`` into search text and the window its date phrases name, relative to aware ``now``."""
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware: phrases are read in the user's time zone")
    found = _phrases(query, now)
    cut, position = [], 0
    for start, end, _ in found:
        cut.append(query[position:start])
        position = end + 1 if query.startswith("的", end) else end
    cut.append(query[position:])
    text = " ".join(" ".join(cut).split())
    phrases = tuple(query[start:end].strip() for start, end, _ in found)
    if not found:
        return ParsedQuery(text, None, None, phrases)
    window_start, window_end = _resolve([meaning for _, _, meaning in found], now)
    return ParsedQuery(text, window_start, window_end, phrases)


def _phrases(query: str, now: datetime) -> list[tuple[int, int, _Meaning]]:
    """The recognised phrases in query order: longest first where candidates overlap."""
    candidates = []
    for pattern, handler in _RULES:
        for match in pattern.finditer(query):
            try:
                candidates.append((match.start(), match.end(), handler(match, now)))
            except (ValueError, OverflowError):
                continue  # an impossible date or numeral is no date phrase
    candidates.sort(key=lambda c: (c[0] - c[1], c[0]))
    chosen: list[tuple[int, int, _Meaning]] = []
    for candidate in candidates:
        if all(candidate[1] <= start or candidate[0] >= end for start, end, _ in chosen):
            chosen.append(candidate)
    chosen.sort(key=lambda c: c[0])
    kept: list[tuple[int, int, _Meaning]] = []
    for candidate in chosen:
        if not candidate[2].weak or (kept and not query[kept[-1][1] : candidate[0]].strip()):
            kept.append(candidate)
    return kept


def _narrow(windows: list[_Window]) -> _Window | None:
    if not windows:
        return None
    # By timestamp: datetimes sharing a tzinfo compare by wall time, which repeats when clocks go back.
    start = max((w[0] for w in windows), key=datetime.timestamp)
    end = min((w[1] for w in windows), key=datetime.timestamp)
    return (start, end) if start.timestamp() < end.timestamp() else windows[0]


def _resolve(meanings: list[_Meaning], now: datetime) -> _Window:
    today = now.date()
    context = _narrow([m.window for m in meanings if m.window])
    ref = today if context is None else (context[1] - timedelta(microseconds=1)).date()
    anchored = [m.period_at(ref) for m in meanings if m.period_at]
    context = _narrow(([context] if context else []) + anchored)
    if context is not None:
        ref = (context[1] - timedelta(microseconds=1)).date()
    days = [m.day(ref) for m in meanings if m.day]
    part = next((m.part for m in meanings if m.part), None)
    clock = next(((m.clock, m.small_hour_is_pm) for m in meanings if m.clock), None)
    if days:
        return _on_day(days[0], part, clock, now)
    if context is not None:
        return context
    latest = _on_day(today, part, clock, now)
    if latest[0].timestamp() <= now.timestamp():
        return latest
    return _on_day(today - timedelta(days=1), part, clock, now)


def _on_day(
    day: date, part: tuple[int, int] | None, clock: tuple[tuple[int, int], bool] | None, now: datetime
) -> _Window:
    midnight = _midnight(day, now)
    if clock is not None:
        (hour, minute), small_hour_is_pm = clock
        # 下午3点, "afternoon at 3": the part of day decides between 3:00 and 15:00.
        if part and hour <= 12 and not part[0] <= hour < part[1] and part[0] <= hour + 12 <= part[1]:
            hour += 12
        elif not part and small_hour_is_pm and 1 <= hour <= 6:
            hour += 12  # the small hours are said with 凌晨, so a bare 3点 at the desk is 15:00
        start = midnight + timedelta(hours=hour, minutes=minute)
        return start, start + timedelta(hours=1)
    if part is not None:
        return midnight + timedelta(hours=part[0]), midnight + timedelta(hours=part[1])
    return midnight, _midnight(day + timedelta(days=1), now)
