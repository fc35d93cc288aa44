"""Date and time phrases in Recall search queries, Chinese and English, turned into a time window.

``parse_query`` finds the phrases with a table of regular expressions (``_RULES``, one resolver per row),
narrows them into one half-open window ``[start, end)`` in the time zone of ``now`` and returns the rest of
the query as the text to search. Where people mean two different days by one phrase, the likelier is the
window and the other is in ``alternatives``, so that a search can rank both readings. No model, no
network, no dateparser: its ``search_dates`` takes 20-100 ms a call, returns instants rather than
windows and misses 两小时前 and 上周二.

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
Tuesday, on Tuesday, 周二 星期二 礼拜二               the latest Tuesday on or before today; the
                                                      first after today is an alternative (a
                                                      flight "on Monday"); in a period named
                                                      (上周 周二) the Tuesday in it, only
by Tuesday, 周二前 周二之前                           the first Tuesday after today (a deadline)
last Tuesday / next Tuesday                           the latest before / first after today; when
                                                      that is in this week, the Tuesday a week
                                                      further is an alternative (on a Friday,
                                                      "last Wednesday" is often the week before's)
this Tuesday 这周二 本周二, 上周二 上星期二,          Tuesday of this / the previous / next
上上周二, 下周二                                      week (上上: two weeks back)
Friday the 9th, Sunday, the 4th, Fri 9th,             the latest 9th on or before today that is
周五9号 9号周五 星期五（9日）; on the 9th            a Friday, of the last three 9ths; if none
                                                      is, or no weekday is named, the latest 9th
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
上个月9号, 本月15日                                   that day of that month
weekend, this/last weekend, 周末 上周末               Saturday and Sunday; alone, the latest
                                                      one that has begun
2026-11-03, 2026/11/03, 11/03, on 3/4 (month first),  that day; without a year, the latest
November 3rd, 3 Nov 2026, 11月3日 11月3号 十一月三号  one on or before today
October 20 to 23, Oct 20-23, 10月20日到23日,          those days (within one month)
11月10日至12号
in November, Nov 2026, November's, 11月 11月份,       that month (without a year, the latest
2026年11月, in 2025, 2025年                            begun) / that year
====================================================  =======================================

Combining: periods (weeks, months, years, ranges) intersect, and a bare weekday or a date without a
year resolves inside them (上周 周二, 去年 11月3日, 上个月9号). A single day is narrowed by a part of day,
then by a clock time, which the part of day can move to pm (上周二下午, yesterday at 3pm, 昨天下午3点 =
15:00); neither narrows a period longer than a day. In a contradiction the day named beats the period,
a date with its day number beats a weekday ("Friday, October 9" is October 9), and the first day beats
later ones.

Reading: a date can be when the user saw something or what the thing is about. ``seen`` says the
query's own words name the first: a viewing verb after "I" (I looked at, I read, I opened, I had open)
or a Chinese one with 的/了/过 (看的, 查验的, 截的, 打开过).

Matching: English is case-insensitive and matched as whole words, so "satisfied" holds no "sat" and
"monday.com" or "user@sunday" no weekday; the weekday abbreviations mon ... sun count only after
last/this/next/on or before a day number, and a month name only with a day, a year or "in". A part of
day after a count is no date ("per night", "every morning", 每天晚上). A day number alone (9号, 9日)
is a date only after a month (上个月9号) or with a weekday, since 9号 is also "number 9". A Chinese
hour with nothing but 点 (3点) counts only right after another date phrase (昨天3点), since 3点 also
means "three points". A bare Chinese hour 1-6 is pm (三点 = 15:00; small hours take 凌晨). A month/day
with a slash needs two digits each, a year or "on" (3/4 is a fraction). A 的 right after a phrase is
dropped with it (昨天的报销单 -> 报销单).
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
    # Other windows the phrases are as often meant as (on a Friday, "last Wednesday" two or nine days
    # ago), likeliest first: a search ranks every reading rather than choosing.
    alternatives: tuple[_Window, ...] = ()
    seen: bool = False  # the query's words say the date is when it was on screen ("I looked at", 看的)

    @property
    def windows(self) -> tuple[_Window, ...]:
        """Every reading of the date: the window, then the alternatives; none without a date."""
        if self.start is None or self.end is None:
            return ()
        return ((self.start, self.end), *self.alternatives)


@dataclass(frozen=True, slots=True)
class _Meaning:
    """What one phrase constrains; a phrase sets at least one field."""

    window: _Window | None = None
    period_at: Callable[[date], _Window] | None = None  # a period relative to the reference day
    day: Callable[[date], date] | None = None  # given the reference day: today or the last day of the periods
    other_day: Callable[[date], date] | None = None  # the day as often meant by the same words
    by_weekday: bool = False  # the day is named by its weekday alone, so a day number beats it
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
_CN_DAY = r"\d{1,2}|[一二三四五六七八九十]{1,3}"
_EN_WEEKDAY = (
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues?|wed|thu(?:rs?)?|fri|sat|sun"
)
# A part of day after a count or a greeting is no date: "per night", "every morning", "good evening".
_NOT_COUNTED = "".join(
    rf"(?<!\b{word}\s)" for word in ("a", "an", "per", "each", "every", "all", "one", "good")
)
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


# A weekday with a day number ("Friday the 9th") looks for that weekday among this many latest 9ths.
_DAY_NUMBER_MONTHS = 3


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


def _day_of_month(day: int, weekday: int | None) -> Callable[[date], date]:
    """The latest ``day`` of a month on or before the reference day that falls on ``weekday``, looking
    back over the last ``_DAY_NUMBER_MONTHS`` such days; else (or with no weekday) the latest one."""
    if not 1 <= day <= 31:
        raise ValueError(f"no day {day} in any month")

    def resolve(ref: date) -> date:
        candidates: list[date] = []
        year, month = ref.year, ref.month
        while len(candidates) < _DAY_NUMBER_MONTHS:
            if day <= monthrange(year, month)[1] and date(year, month, day) <= ref:
                candidates.append(date(year, month, day))
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        return next((c for c in candidates if c.weekday() == weekday), candidates[0])

    return resolve


def _weekday(m: re.Match[str], now: datetime) -> _Meaning:
    weekday, today = _WEEKDAYS[m["wd"][:3].lower()], now.date()
    this_monday = today - timedelta(days=today.weekday())
    match (m["q"] or "").lower():
        case "" | "on":
            # The flight or the meeting "on Monday" may be the coming one: the latest is likelier.
            upcoming = _fixed(today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1))
            return _Meaning(day=_latest_weekday(weekday), other_day=upcoming, by_weekday=True)
        case "last":
            last = today - timedelta(days=(today.weekday() - weekday - 1) % 7 + 1)
            # On a Friday "last Wednesday" is two days ago to some, the week before's to others.
            other = _fixed(last - timedelta(weeks=1)) if last >= this_monday else None
            return _Meaning(day=_fixed(last), other_day=other, by_weekday=True)
        case "next":
            coming = today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)
            other = _fixed(coming + timedelta(weeks=1)) if coming < this_monday + timedelta(weeks=1) else None
            return _Meaning(day=_fixed(coming), other_day=other, by_weekday=True)
        case relative:
            day = _week(today, _RELATIVE[relative], now, first=weekday)[0].date()
            return _Meaning(day=_fixed(day), by_weekday=True)


def _deadline(m: re.Match[str], now: datetime) -> _Meaning:
    """by Monday, 周一之前: a deadline, so the first Monday after today."""
    weekday, today = _WEEKDAYS[m["wd"][:3].lower()], now.date()
    return _Meaning(day=_fixed(today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)))


def _weekday_and_day(m: re.Match[str], now: datetime) -> _Meaning:
    """Friday the 9th, 周五9号: the day number decides, the weekday picks among recent months."""
    if m.groupdict().get("en") is not None and not (m["the"] or m["suffix"]):
        raise ValueError("Friday 9 is more often a count or a time than a date")
    return _Meaning(day=_day_of_month(_number(m["d"]), _WEEKDAYS[m["wd"][:3].lower()]))


def _day_number(m: re.Match[str], now: datetime) -> _Meaning:
    return _Meaning(day=_day_of_month(_number(m["d"]), None))


def _month_and_day(m: re.Match[str], now: datetime) -> _Meaning:
    return _Meaning(window=_period(m, now).window, day=_day_of_month(_number(m["d"]), None))


def _day_range(m: re.Match[str], now: datetime) -> _Meaning:
    """October 20 to 23, 10月20日到23日: the first day as a date, through the last day of its month."""
    first, last_day = _date(m, now).day, _number(m["d2"])
    if first is None or not _number(m["d"]) < last_day <= 31:
        raise ValueError("a range runs forward within a month")

    def window(ref: date) -> _Window:
        start = first(ref)
        stop = start.replace(day=min(last_day, monthrange(start.year, start.month)[1]))
        return _days(start, stop + timedelta(days=1), now)

    return _Meaning(period_at=window)


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
        rf"{_L}{_NOT_COUNTED}(?:(?:in|during)\s+the\s+|at\s+)?"
        rf"(?P<p>morning|noon|midday|lunchtime|afternoon|evening|night){_R}",
        _part,
    ),
    _rule(
        rf"{_L}(?:(?P<q>last|this|next|on)\s+)?(?P<wd>monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
        rf"(?:['\u2019]s)?{_R}",
        _weekday,
    ),
    _rule(
        rf"{_L}(?P<en>)(?:(?:last|this|on)\s+)?(?P<wd>{_EN_WEEKDAY})\.?,?\s+(?:(?P<the>the)\s+)?"
        rf"(?P<d>\d{{1,2}})(?P<suffix>st|nd|rd|th)?{_R}",
        _weekday_and_day,
    ),
    _rule(rf"{_L}(?:by|until|till|due)\s+(?P<wd>{_EN_WEEKDAY})\.?(?:['\u2019]s)?{_R}", _deadline),
    _rule(rf"{_L}on\s+the\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th){_R}", _day_number),
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
    _rule(
        rf"{_L}(?:(?:on|from)\s+)?{_EN_MONTH}\s+{_EN_DAY}(?P<y>)\s*(?:-|\u2013|to|through|until|till)\s*"
        rf"(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?{_R}",
        _day_range,
    ),
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
    _rule(rf"(?<!每)(?<!每天)(?P<p>{_CN_PART})", _part),
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
    _rule(
        rf"{_CN_YMD}(?P<d>{_CN_DAY})[日号號]?\s*(?:到|至|-|~|\u2013|\uff5e)\s*(?:(?P=m)月)?(?P<d2>{_CN_DAY})[日号號]",
        _day_range,
    ),
    _rule(
        rf"(?<![0-9{_CN_NUMERALS}每])(?:{_CN_REL})?(?:周|星期|礼拜)(?P<wd>[一二三四五六日天1-7])"
        rf"[\s,，、(（]*(?P<d>{_CN_DAY})[日号號][)）]?",
        _weekday_and_day,
    ),
    _rule(
        rf"(?<![0-9{_CN_NUMERALS}月])(?P<d>{_CN_DAY})[日号號][\s,，、(（]*(?:{_CN_REL})?(?:周|星期|礼拜)"
        rf"(?P<wd>[一二三四五六日天1-7])[)）]?",
        _weekday_and_day,
    ),
    _rule(rf"{_CN_REL}(?P<unit>月)(?P<d>{_CN_DAY})[日号號]", _month_and_day),
    _rule(
        rf"(?<![0-9{_CN_NUMERALS}每上这本下])(?:周|星期|礼拜)(?P<wd>[一二三四五六日天1-7])(?:之|以)?前(?!天)",
        _deadline,
    ),
    _rule(rf"{_CN_YMD}份?(?![0-9{_CN_NUMERALS}日号號前后底初中])", _month_only),
    _rule(rf"(?<![0-9])(?P<y>\d{{4}})年(?![0-9{_CN_NUMERALS}前后])", _year_only),
    _rule(
        rf"(?P<part>{_CN_PART})?(?<![0-9{_CN_NUMERALS}])(?P<h>\d{{1,2}}|[零一二两三四五六七八九十]{{1,3}})"
        r"[点點时時](?:(?P<half>半)|(?P<quarter>[一三]刻)|(?P<min>\d{1,2}|[零一二三四五六七八九十]{1,3})分?)?"
        r"(?P<tail>钟|整|左右)?",
        _cn_clock,
    ),
)


# Words saying a date is when something was on screen: a viewing verb after "I", or a Chinese one
# with 的, 了 or 过 after it.
_SEEN_EN = re.compile(
    r"(?<![A-Za-z])i(?:\s+was|\s+had|\s+have|'ve)?\s+(?:looked\s+at|looking\s+at|saw|seen|read|reading"
    r"|opened|open|reviewed|viewed|visited|browsed|skimmed|checked)(?![A-Za-z])",
    re.IGNORECASE,
)
_SEEN_ZH = re.compile(r"(?:看到|看过|看|浏览|打开|查看|查验|截图|截|读|翻)(?:过|到)?[的了过]")


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
    (window_start, window_end), *alternatives = _resolve([meaning for _, _, meaning in found], now)
    seen = bool(_SEEN_EN.search(query) or _SEEN_ZH.search(query))
    return ParsedQuery(text, window_start, window_end, phrases, tuple(alternatives), seen)


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


def _resolve(meanings: list[_Meaning], now: datetime) -> list[_Window]:
    """The window the meanings narrow to, then the other readings of its day."""
    today = now.date()
    context = _narrow([m.window for m in meanings if m.window])
    ref = today if context is None else (context[1] - timedelta(microseconds=1)).date()
    anchored = [m.period_at(ref) for m in meanings if m.period_at]
    context = _narrow(([context] if context else []) + anchored)
    if context is not None:
        ref = (context[1] - timedelta(microseconds=1)).date()
    # A day named by its number beats one named by its weekday; else the first day named wins.
    day = min((m for m in meanings if m.day), key=lambda m: m.by_weekday, default=None)
    part = next((m.part for m in meanings if m.part), None)
    clock = next(((m.clock, m.small_hour_is_pm) for m in meanings if m.clock), None)
    if day is not None and day.day is not None:
        # A period named settles which one.
        other = day.other_day if day.other_day and context is None else None
        readings = [day.day(ref)] + ([other(ref)] if other else [])
        return [_on_day(reading, part, clock, now) for reading in readings]
    if context is not None:
        return [context]
    latest = _on_day(today, part, clock, now)
    if latest[0].timestamp() <= now.timestamp():
        return [latest]
    return [_on_day(today - timedelta(days=1), part, clock, now)]


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
