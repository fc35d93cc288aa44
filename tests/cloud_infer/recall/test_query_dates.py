"""parse_query: date and time phrases in Chinese and English search queries, against fixed clocks."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from cloud_infer.recall.query_dates import ParsedQuery, parse_query

SHANGHAI = ZoneInfo("Asia/Shanghai")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
# A Wednesday afternoon; this week runs Mon 16 - Sun 22 November.
WED = datetime(2026, 11, 18, 15, 30, tzinfo=SHANGHAI)
# Half an hour into a Friday that starts a new month, year and (Mon 28 Dec) an ISO week already begun.
NEW_YEAR = datetime(2027, 1, 1, 0, 30, tzinfo=SHANGHAI)
# The Friday of that week: "last Wednesday" is two days ago to some, nine to others.
FRI = datetime(2026, 11, 20, 17, 30, tzinfo=SHANGHAI)
# A Sunday morning in Los Angeles, 2.5 hours after clocks went forward from 02:00 PST to 03:00 PDT.
DST = datetime(2026, 3, 8, 4, 30, tzinfo=LOS_ANGELES)

# (now, query, start, end, text): start and end are local wall times in the zone of now.
CASES: list[tuple[datetime, str, str, str, str]] = [
    # The examples of the brief.
    (
        WED,
        "the invoice I looked at last Tuesday",
        "2026-11-17 00:00",
        "2026-11-18 00:00",
        "the invoice I looked at",
    ),
    (WED, "上周二下午 报销单", "2026-11-10 12:00", "2026-11-10 18:00", "报销单"),
    (WED, "yesterday morning kafka retention", "2026-11-17 06:00", "2026-11-17 12:00", "kafka retention"),
    (WED, "前天晚上看的那个网页", "2026-11-16 18:00", "2026-11-17 00:00", "看的那个网页"),
    (WED, "3 days ago", "2026-11-15 00:00", "2026-11-16 00:00", ""),
    (WED, "两小时前", "2026-11-18 12:30", "2026-11-18 14:30", ""),
    (WED, "this week", "2026-11-16 00:00", "2026-11-23 00:00", ""),
    (WED, "本月", "2026-11-01 00:00", "2026-12-01 00:00", ""),
    (WED, "on Nov 3", "2026-11-03 00:00", "2026-11-04 00:00", ""),
    (WED, "11月3日", "2026-11-03 00:00", "2026-11-04 00:00", ""),
    (WED, "2026-11-03", "2026-11-03 00:00", "2026-11-04 00:00", ""),
    (WED, "last Friday afternoon", "2026-11-13 12:00", "2026-11-13 18:00", ""),
    (WED, "今天上午", "2026-11-18 06:00", "2026-11-18 12:00", ""),
    (WED, "昨晚", "2026-11-17 18:00", "2026-11-18 00:00", ""),
    # Day words.
    (WED, "today's notes", "2026-11-18 00:00", "2026-11-19 00:00", "notes"),
    (WED, "昨天的报销单", "2026-11-17 00:00", "2026-11-18 00:00", "报销单"),
    (WED, "the day before yesterday", "2026-11-16 00:00", "2026-11-17 00:00", ""),
    (WED, "大前天 会议纪要", "2026-11-15 00:00", "2026-11-16 00:00", "会议纪要"),
    (WED, "今早 邮件", "2026-11-18 06:00", "2026-11-18 12:00", "邮件"),
    (WED, "昨天晚上 git log", "2026-11-17 18:00", "2026-11-18 00:00", "git log"),
    (WED, "tonight", "2026-11-18 18:00", "2026-11-19 00:00", ""),
    (WED, "last night deploy logs", "2026-11-17 18:00", "2026-11-18 00:00", "deploy logs"),
    (WED, "YESTERDAY Morning", "2026-11-17 06:00", "2026-11-17 12:00", ""),
    # Parts of day alone: the latest one that has begun by 15:30.
    (WED, "this morning", "2026-11-18 06:00", "2026-11-18 12:00", ""),
    (WED, "中午 外卖", "2026-11-18 11:00", "2026-11-18 14:00", "外卖"),
    (WED, "in the afternoon", "2026-11-18 12:00", "2026-11-18 18:00", ""),
    (WED, "evening", "2026-11-17 18:00", "2026-11-18 00:00", ""),
    (WED, "晚上", "2026-11-17 18:00", "2026-11-18 00:00", ""),
    (WED, "傍晚", "2026-11-17 17:00", "2026-11-17 20:00", ""),
    (WED, "凌晨", "2026-11-18 00:00", "2026-11-18 06:00", ""),
    # Weekdays.
    (WED, "周二", "2026-11-17 00:00", "2026-11-18 00:00", ""),
    (WED, "星期三 standup", "2026-11-18 00:00", "2026-11-19 00:00", "standup"),
    (WED, "礼拜五", "2026-11-13 00:00", "2026-11-14 00:00", ""),
    (WED, "上星期二", "2026-11-10 00:00", "2026-11-11 00:00", ""),
    (WED, "这周二", "2026-11-17 00:00", "2026-11-18 00:00", ""),
    (WED, "本周五", "2026-11-20 00:00", "2026-11-21 00:00", ""),
    (WED, "下周一", "2026-11-23 00:00", "2026-11-24 00:00", ""),
    (WED, "上上周二", "2026-11-03 00:00", "2026-11-04 00:00", ""),
    (WED, "上个礼拜天", "2026-11-15 00:00", "2026-11-16 00:00", ""),
    (WED, "last Wednesday", "2026-11-11 00:00", "2026-11-12 00:00", ""),
    (WED, "Wednesday", "2026-11-18 00:00", "2026-11-19 00:00", ""),
    (WED, "next Tuesday", "2026-11-24 00:00", "2026-11-25 00:00", ""),
    (WED, "this Friday", "2026-11-20 00:00", "2026-11-21 00:00", ""),
    (WED, "slides on Sat.", "2026-11-14 00:00", "2026-11-15 00:00", "slides"),
    (
        WED,
        "notes from Monday's roadmap meeting",
        "2026-11-16 00:00",
        "2026-11-17 00:00",
        "notes from roadmap meeting",
    ),
    # A deadline: the first such weekday after today.
    (WED, "what do I owe Olivia by Monday", "2026-11-23 00:00", "2026-11-24 00:00", "what do I owe Olivia"),
    (WED, "report due Friday", "2026-11-20 00:00", "2026-11-21 00:00", "report"),
    (WED, "周一之前要交的报告", "2026-11-23 00:00", "2026-11-24 00:00", "要交的报告"),
    (WED, "周三前交", "2026-11-25 00:00", "2026-11-26 00:00", "交"),
    # A weekday with a day number: the latest such day on that weekday (Fri 9 Oct, Sun 4 Oct), else
    # the latest day of that number (no 10th of the last three months was a Friday: 10 Nov).
    (
        WED,
        "platform status I read on Friday the 9th",
        "2026-10-09 00:00",
        "2026-10-10 00:00",
        "platform status I read",
    ),
    (WED, "banana bread, Sunday, the 4th", "2026-10-04 00:00", "2026-10-05 00:00", "banana bread,"),
    (WED, "Fri 9th", "2026-10-09 00:00", "2026-10-10 00:00", ""),
    (WED, "Friday the 10th", "2026-11-10 00:00", "2026-11-11 00:00", ""),
    (WED, "周五9号的周报", "2026-10-09 00:00", "2026-10-10 00:00", "周报"),
    (WED, "9号周五 周报", "2026-10-09 00:00", "2026-10-10 00:00", "周报"),
    (WED, "星期日（4日）", "2026-10-04 00:00", "2026-10-05 00:00", ""),
    (WED, "周五10号", "2026-11-10 00:00", "2026-11-11 00:00", ""),
    (WED, "on the 9th", "2026-11-09 00:00", "2026-11-10 00:00", ""),
    (WED, "on the 20th", "2026-10-20 00:00", "2026-10-21 00:00", ""),
    # A date with its day number beats a weekday it contradicts.
    (WED, "Friday, October 8", "2026-10-08 00:00", "2026-10-09 00:00", ","),
    (WED, "周五 10月8日", "2026-10-08 00:00", "2026-10-09 00:00", ""),
    # Clock times.
    (WED, "yesterday at 3pm", "2026-11-17 15:00", "2026-11-17 16:00", ""),
    (WED, "昨天下午3点", "2026-11-17 15:00", "2026-11-17 16:00", ""),
    (WED, "昨天3点半 会议", "2026-11-17 15:30", "2026-11-17 16:30", "会议"),
    (WED, "周一 凌晨 三点一刻", "2026-11-16 03:15", "2026-11-16 04:15", ""),
    (WED, "中午1点", "2026-11-18 13:00", "2026-11-18 14:00", ""),
    (WED, "晚上8点", "2026-11-17 20:00", "2026-11-17 21:00", ""),
    (WED, "3:30 pm", "2026-11-18 15:30", "2026-11-18 16:30", ""),
    (WED, "at 9am standup", "2026-11-18 09:00", "2026-11-18 10:00", "standup"),
    (WED, "2026-11-03 at 14:05", "2026-11-03 14:05", "2026-11-03 15:05", ""),
    # N units ago.
    (WED, "10 minutes ago", "2026-11-18 15:15", "2026-11-18 15:25", ""),
    (WED, "十分钟前", "2026-11-18 15:15", "2026-11-18 15:25", ""),
    (WED, "半小时前", "2026-11-18 14:45", "2026-11-18 15:15", ""),
    (WED, "an hour and a half ago", "2026-11-18 13:15", "2026-11-18 14:45", ""),
    (WED, "三天前", "2026-11-15 00:00", "2026-11-16 00:00", ""),
    (WED, "a week ago", "2026-11-09 00:00", "2026-11-16 00:00", ""),
    (WED, "两周前", "2026-11-02 00:00", "2026-11-09 00:00", ""),
    (WED, "三个月前", "2026-08-01 00:00", "2026-09-01 00:00", ""),
    (WED, "1 year ago", "2025-01-01 00:00", "2026-01-01 00:00", ""),
    # Last N units.
    (WED, "最近三天", "2026-11-15 15:30", "2026-11-18 15:30", ""),
    (WED, "in the past 24 hours", "2026-11-17 15:30", "2026-11-18 15:30", ""),
    (WED, "过去两个月", "2026-09-18 15:30", "2026-11-18 15:30", ""),
    # This / last / next periods.
    (WED, "last week", "2026-11-09 00:00", "2026-11-16 00:00", ""),
    (WED, "上个星期", "2026-11-09 00:00", "2026-11-16 00:00", ""),
    (WED, "上周天气", "2026-11-09 00:00", "2026-11-16 00:00", "天气"),
    (WED, "上个月", "2026-10-01 00:00", "2026-11-01 00:00", ""),
    (WED, "next month", "2026-12-01 00:00", "2027-01-01 00:00", ""),
    (WED, "上上个月", "2026-09-01 00:00", "2026-10-01 00:00", ""),
    (WED, "今年", "2026-01-01 00:00", "2027-01-01 00:00", ""),
    (WED, "上个月9号", "2026-10-09 00:00", "2026-10-10 00:00", ""),
    (WED, "本月15日的会", "2026-11-15 00:00", "2026-11-16 00:00", "会"),
    (WED, "去年", "2025-01-01 00:00", "2026-01-01 00:00", ""),
    (WED, "last year", "2025-01-01 00:00", "2026-01-01 00:00", ""),
    (WED, "周末", "2026-11-14 00:00", "2026-11-16 00:00", ""),
    (WED, "这个周末", "2026-11-21 00:00", "2026-11-23 00:00", ""),
    (WED, "over the weekend", "2026-11-14 00:00", "2026-11-16 00:00", ""),
    # Absolute dates and months; without a year, the latest one not after today.
    (WED, "November 3rd", "2026-11-03 00:00", "2026-11-04 00:00", ""),
    (WED, "3 Nov 2025", "2025-11-03 00:00", "2025-11-04 00:00", ""),
    (WED, "11月3号", "2026-11-03 00:00", "2026-11-04 00:00", ""),
    (WED, "十一月三号", "2026-11-03 00:00", "2026-11-04 00:00", ""),
    (WED, "2025年11月3日", "2025-11-03 00:00", "2025-11-04 00:00", ""),
    # Ranges of days within a month.
    (WED, "the hotel for October 20 to 23", "2026-10-20 00:00", "2026-10-24 00:00", "the hotel for"),
    (WED, "Oct 20-23", "2026-10-20 00:00", "2026-10-24 00:00", ""),
    (WED, "10月22日到24日休假", "2026-10-22 00:00", "2026-10-25 00:00", "休假"),
    (WED, "11月10日至12号的值班通知", "2026-11-10 00:00", "2026-11-13 00:00", "值班通知"),
    (WED, "11/03", "2026-11-03 00:00", "2026-11-04 00:00", ""),
    (WED, "Dec 25", "2025-12-25 00:00", "2025-12-26 00:00", ""),
    (WED, "in November", "2026-11-01 00:00", "2026-12-01 00:00", ""),
    (WED, "2025年11月", "2025-11-01 00:00", "2025-12-01 00:00", ""),
    (WED, "in 2025", "2025-01-01 00:00", "2026-01-01 00:00", ""),
    # Combinations and mixed languages.
    (WED, "上周二 invoice", "2026-11-10 00:00", "2026-11-11 00:00", "invoice"),
    (WED, "kafka 上周 retention", "2026-11-09 00:00", "2026-11-16 00:00", "kafka retention"),
    (WED, "上周 周二", "2026-11-10 00:00", "2026-11-11 00:00", ""),
    (WED, "last week Friday", "2026-11-13 00:00", "2026-11-14 00:00", ""),
    (WED, "去年 11月3日", "2025-11-03 00:00", "2025-11-04 00:00", ""),
    (WED, "去年 11月", "2025-11-01 00:00", "2025-12-01 00:00", ""),
    (WED, "昨天 上周", "2026-11-17 00:00", "2026-11-18 00:00", ""),
    # Month, year and week boundaries.
    (NEW_YEAR, "昨晚", "2026-12-31 18:00", "2027-01-01 00:00", ""),
    (NEW_YEAR, "晚上", "2026-12-31 18:00", "2027-01-01 00:00", ""),
    (NEW_YEAR, "凌晨", "2027-01-01 00:00", "2027-01-01 06:00", ""),
    (NEW_YEAR, "上个月", "2026-12-01 00:00", "2027-01-01 00:00", ""),
    (NEW_YEAR, "last year", "2026-01-01 00:00", "2027-01-01 00:00", ""),
    (NEW_YEAR, "本周", "2026-12-28 00:00", "2027-01-04 00:00", ""),
    (NEW_YEAR, "last week", "2026-12-21 00:00", "2026-12-28 00:00", ""),
    (NEW_YEAR, "上周五", "2026-12-25 00:00", "2026-12-26 00:00", ""),
    (NEW_YEAR, "12/25", "2026-12-25 00:00", "2026-12-26 00:00", ""),
    (NEW_YEAR, "11月3日", "2026-11-03 00:00", "2026-11-04 00:00", ""),
    (NEW_YEAR, "三个月前", "2026-10-01 00:00", "2026-11-01 00:00", ""),
    # Another zone, on the day clocks went forward: that day is 23 hours long.
    (DST, "today", "2026-03-08 00:00", "2026-03-09 00:00", ""),
    (DST, "yesterday", "2026-03-07 00:00", "2026-03-08 00:00", ""),
    (DST, "2 hours ago", "2026-03-08 00:30", "2026-03-08 03:30", ""),
    (DST, "this morning", "2026-03-08 06:00", "2026-03-08 12:00", ""),
    (DST, "weekend", "2026-03-07 00:00", "2026-03-09 00:00", ""),
    (DST, "last Sunday", "2026-03-01 00:00", "2026-03-02 00:00", ""),
    (DST, "上周五", "2026-02-27 00:00", "2026-02-28 00:00", ""),
]

# Text that holds no date phrase, or only things that look like one.
NOT_DATES = [
    "  kafka   retention settings ",
    "I was satisfied with monday.com",
    "I sat in the sun",
    "mail to user@sunday.io",
    "May I see the report",
    "march of the penguins",
    "port 2025",
    "3/4 of the time",
    "3点的建议",
    "每周一例会",
    "一周一次",
    "3月前的版本",
    "16:9 ratio at 10:30:45",
    "2026-13-45",
    "2月30日",
    # A part of day after a count, a day number with no month or weekday.
    "hotel limit per night",
    "every morning standup",
    "good evening everyone",
    "每天晚上跑的任务",
    "9号楼 会议室",
    "地铁2号线",
]


def _local(now: datetime, wall: str) -> datetime:
    return datetime.strptime(wall, "%Y-%m-%d %H:%M").replace(tzinfo=now.tzinfo)


def _assert_instant(actual: datetime | None, expected: datetime) -> None:
    # Same instant and same offset: the wall time shown to the user is right, not only the UTC time.
    assert actual is not None
    assert actual.astimezone(UTC) == expected.astimezone(UTC), (actual.isoformat(), expected.isoformat())
    assert actual.utcoffset() == expected.utcoffset(), (actual.isoformat(), expected.isoformat())


@pytest.mark.parametrize(("now", "query", "start", "end", "text"), CASES, ids=[c[1] for c in CASES])
def test_window_and_text(now: datetime, query: str, start: str, end: str, text: str) -> None:
    parsed = parse_query(query, now)

    _assert_instant(parsed.start, _local(now, start))
    _assert_instant(parsed.end, _local(now, end))
    assert parsed.text == text
    assert parsed.phrases


@pytest.mark.parametrize("query", NOT_DATES)
def test_no_date_phrase_leaves_the_text_whitespace_normalised(query: str) -> None:
    assert parse_query(query, WED) == ParsedQuery(" ".join(query.split()), None, None, ())


def test_phrases_are_returned_as_written_in_query_order() -> None:
    parsed = parse_query("Kafka logs from LAST Friday Afternoon, 下午3点的", WED)

    assert parsed.phrases == ("LAST Friday", "Afternoon", "下午3点")
    assert parsed.text == "Kafka logs from ,"


def test_the_day_part_moves_a_clock_hour_to_pm_and_the_first_day_wins() -> None:
    parsed = parse_query("yesterday afternoon at 3 pm, not last Tuesday", WED)

    assert (parsed.start, parsed.end) == (_local(WED, "2026-11-17 15:00"), _local(WED, "2026-11-17 16:00"))
    assert parsed.text == ", not"


def test_results_are_in_the_zone_of_now() -> None:
    for now in (WED, DST):
        parsed = parse_query("上周二下午", now)
        assert parsed.start is not None and parsed.end is not None
        assert parsed.start.tzinfo is now.tzinfo and parsed.end.tzinfo is now.tzinfo


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_query("yesterday", datetime(2026, 11, 18, 15, 30))


def test_a_parse_takes_well_under_a_millisecond() -> None:
    queries = [case[1] for case in CASES[:20]] + NOT_DATES[:5]
    runs = 200
    started = time.perf_counter()
    for i in range(runs):
        parse_query(queries[i % len(queries)], WED)
    average = (time.perf_counter() - started) / runs

    assert average < 0.005, f"{average * 1000:.2f} ms per parse"


def test_a_weekday_needs_the_or_an_ordinal_to_take_a_day_number() -> None:
    for query, phrases in (("Friday 2 tickets left", ("Friday",)), ("Friday 3pm", ("Friday", "3pm"))):
        assert parse_query(query, WED).phrases == phrases


@pytest.mark.parametrize(
    ("now", "query", "window", "alternative"),
    [
        # On a Friday the Wednesday of this week or of the week before; the part of day applies to both.
        (FRI, "the report I looked at last Wednesday", "2026-11-18", "2026-11-11"),
        (FRI, "last Monday", "2026-11-16", "2026-11-09"),
        (WED, "next Friday", "2026-11-20", "2026-11-27"),
        # A bare weekday: the latest one, or the coming one (a flight "on Monday").
        (WED, "the flight on Monday", "2026-11-16", "2026-11-23"),
        (FRI, "周一飞北京的机票", "2026-11-16", "2026-11-23"),
    ],
)
def test_a_weekday_people_read_two_ways_has_the_other_day_as_an_alternative(
    now: datetime, query: str, window: str, alternative: str
) -> None:
    parsed = parse_query(query, now)

    day, other = _local(now, f"{window} 00:00"), _local(now, f"{alternative} 00:00")
    assert (parsed.start, parsed.end) == (day, day + timedelta(days=1))
    assert parsed.alternatives == ((other, other + timedelta(days=1)),)
    assert parsed.windows == ((day, day + timedelta(days=1)), (other, other + timedelta(days=1)))


def test_an_alternative_day_keeps_the_part_of_day() -> None:
    parsed = parse_query("last Wednesday afternoon", FRI)

    assert parsed.alternatives == ((_local(FRI, "2026-11-11 12:00"), _local(FRI, "2026-11-11 18:00")),)


@pytest.mark.parametrize(
    ("now", "query"),
    [
        (WED, "last Wednesday"),  # a week ago: the week before
        (WED, "last Friday"),
        (FRI, "上周三"),  # the week is named
        (FRI, "上周 周三"),
        (FRI, "last week Wednesday"),
        (FRI, "this Wednesday"),
        (FRI, "yesterday"),
    ],
)
def test_a_day_named_unambiguously_has_no_alternative(now: datetime, query: str) -> None:
    parsed = parse_query(query, now)

    assert parsed.start is not None and parsed.alternatives == ()
    assert len(parsed.windows) == 1
    assert parse_query("kafka", now).windows == ()


@pytest.mark.parametrize(
    ("query", "seen"),
    [
        ("the NYC expense report I looked at last Wednesday", True),
        ("email I read this morning", True),
        ("marketing budget draft I had open last Sunday", True),
        ("VPN settings I saw yesterday", True),
        ("上周五查验的云杉发票", True),
        ("昨天看的 Kafka 订单 topic", True),
        ("上周日截的快递图", True),
        ("the Acme invoice dated September 28", False),
        ("9月18日开的那张发票", False),
        ("the meeting on Monday where we decided", False),
        ("10月20日下午订的会议室", False),
    ],
)
def test_the_words_can_say_the_date_is_when_it_was_seen(query: str, seen: bool) -> None:
    assert parse_query(query, FRI).seen is seen
