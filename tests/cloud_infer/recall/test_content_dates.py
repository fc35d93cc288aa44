"""A date in a query can mean when the user saw something or the date the thing is about; search reads it
both ways and ranks, so the date never empties the results.

The history is real (events through the pipeline into the index); the look-alikes differ only in their
date: two receipts seen the same afternoon, dated 3月5日 and 3月12日; an August and a September bill;
and two meeting notes, one seen on the Monday it was about, one seen on that Monday about another day.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cloud_infer.recall.content_dates import dates_in, window_tokens
from cloud_infer.recall.embedder import Role
from cloud_infer.recall.runtime import RecallRuntime
from cloud_infer.tenancy.fair_pool import Priority
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.recall import focus, ingest

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 10, 16, 17, 30, tzinfo=SHANGHAI)  # a Friday
RECEIPT, BILL, NOTES = "收据 - 文具店", "Electricity bill - City Power", "Meeting notes"
DOCS = [
    # (window id, seen at, title, text)
    (1, datetime(2026, 10, 14, 15, 0), RECEIPT, "收据 No. 0311 文具店 日期 2026年3月5日 金额 86.00 元"),
    (2, datetime(2026, 10, 14, 15, 5), RECEIPT, "收据 No. 0318 文具店 日期 2026年3月12日 金额 64.50 元"),
    (3, datetime(2026, 10, 9, 10, 0), BILL, "Electricity bill, billing period August 2026, 412 kWh"),
    (4, datetime(2026, 10, 15, 9, 0), BILL, "Electricity bill, billing period September 2026, 388 kWh"),
    (
        5,
        datetime(2026, 10, 12, 18, 0),
        NOTES,
        "Design review, Monday Oct 12, 2026: cache rollout agreed",
    ),
    (
        6,
        datetime(2026, 10, 12, 9, 0),
        NOTES,
        "Design review, Thursday Oct 8, 2026: rollout postponed",
    ),
]


def events() -> list[pb.Event]:
    found = []
    for n, (window, seen, title, text) in enumerate(DOCS):
        t = int(seen.replace(tzinfo=SHANGHAI).timestamp() * 1e9)
        found.append(focus(2 * n + 1, t, window, "evince", title))
        snapshot = pb.TextSnapshot(window_id=window, app_id="evince", source="accessibility", text=text)
        found.append(pb.Event(seq=2 * n + 2, time_unix_nano=t + 1_000_000_000, text=snapshot))
    return found


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("发票日期：2026年3月5日", {"d20260305", "md0305", "m202603", "mo03"}),
        ("Invoice date 2026-03-05", {"d20260305", "md0305", "m202603", "mo03"}),
        ("收据 3月5日", {"md0305", "mo03"}),
        ("billing period September 2026", {"m202609", "mo09"}),
        ("Monday Oct 12, 2026 at 14:00", {"d20261012", "md1012", "m202610", "mo10"}),
        ("电费 9月份", {"mo09"}),
        ("version 1.2.3, 3/4 cup, 2026-13-40", set()),
    ],
)
def test_the_dates_a_text_is_about(text: str, tokens: set[str]) -> None:
    assert dates_in(text) == tokens


def test_a_query_window_becomes_day_or_month_tokens() -> None:
    day = window_tokens(datetime(2026, 3, 5, tzinfo=SHANGHAI), datetime(2026, 3, 6, tzinfo=SHANGHAI))
    assert day == {"d20260305", "md0305"}
    month = window_tokens(datetime(2026, 9, 1, tzinfo=SHANGHAI), datetime(2026, 10, 1, tzinfo=SHANGHAI))
    assert month == {"m202609", "mo09"}
    assert window_tokens(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)) == set()


@pytest.mark.parametrize(
    ("query", "window"),
    [
        ("3月5日的收据", 1),  # the receipt's own date; both were seen on 10月14日
        ("receipt dated March 12", 2),
        ("September's electricity bill", 4),  # asked in October: the bill about September
        ("上个月的电费", 4),
        ("the design review on Monday", 5),  # the meeting's day, not the day seen
        ("Thursday's design review", 6),
    ],
)
async def test_a_date_of_the_content_ranks_it_first(
    recall: RecallRuntime, alice: str, query: str, window: int
) -> None:
    await ingest(recall, alice, events())
    found = await recall.service.search(alice, query, tz="Asia/Shanghai", now=NOW)
    assert found.query.dates == "both" and found.hits, found.query
    assert found.hits[0].moment_id.endswith(f".{2 * (window - 1) + 1}"), (query, found.hits[0].title)


async def test_a_date_of_viewing_ranks_what_was_seen_then_and_can_be_a_filter(
    recall: RecallRuntime, alice: str
) -> None:
    await ingest(recall, alice, events())
    # Both bills are about a month; the one seen on 10月9日 is what "last Friday" means.
    seen = await recall.service.search(alice, "electricity bill last Friday", tz="Asia/Shanghai", now=NOW)
    assert seen.hits[0].moment_id.endswith(".5") and len(seen.hits) >= 2  # the other is ranked, not gone
    only = await recall.service.search(
        alice, "electricity bill last Friday", tz="Asia/Shanghai", now=NOW, dates="seen"
    )
    assert [h.moment_id for h in only.hits] == [seen.hits[0].moment_id] and only.query.dates == "seen"


async def test_a_date_read_several_ways_embeds_the_query_once(
    recall: RecallRuntime, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ingest(recall, alice, events())
    embedder = recall.service._embedder
    queries: list[list[str]] = []
    encode = embedder.encode

    async def counted(tenant: str, texts: list[str], priority: Priority, role: Role = Role.PASSAGE) -> Any:
        if role is Role.QUERY:
            queries.append(texts)
        return await encode(tenant, texts, priority, role)

    monkeypatch.setattr(embedder, "encode", counted)
    # On a Friday "last Wednesday" is two or nine days ago, and may also be the bill's own date: the
    # search looks in three ways (its content's date, and each day it may have been seen).
    found = await recall.service.search(alice, "electricity bill last Wednesday", tz="Asia/Shanghai", now=NOW)
    assert found.query.dates == "both" and found.hits, found.query
    assert queries == [["electricity bill"]], queries
