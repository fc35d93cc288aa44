"""zh↔en office terms on the lexical side: a query's words in the other language are searched too, at a
lower weight, so an English query reaches a Chinese page by its words and the query's own language
still ranks first."""

from __future__ import annotations

import time

import pytest

from cloud_infer.recall.expand import EXPANSION_BOOST, expansions, names, translations
from cloud_infer.recall.index import Filters
from cloud_infer.recall.runtime import RecallRuntime
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.recall import NS_PER_S, focus, ingest

PAGES = [
    (1, "发票 - 报销系统", "增值税发票 号码 04418 金额 1,200.00 元 开票日期 2026年9月3日"),
    (2, "Invoice 7781 - Portal", "Invoice 7781 amount due 980.00 USD"),
    (3, "Kafka topics", "orders-v2 retention 7 days"),
    (4, "差旅报销单 - OA", "报销人 李娜 出差地点 杭州 金额 2,356 元"),
    (5, "Trip request TR-3307", "Traveller: Liu Yang, destination Shenzhen, approver Mei Chen"),
]


def events(start_ns: int) -> list[pb.Event]:
    found = []
    for n, (window, title, text) in enumerate(PAGES):
        t = start_ns + n * 60 * NS_PER_S
        found.append(focus(2 * n + 1, t, window, "chromium", title))
        snapshot = pb.TextSnapshot(window_id=window, app_id="chromium", source="accessibility", text=text)
        found.append(pb.Event(seq=2 * n + 2, time_unix_nano=t + NS_PER_S, text=snapshot))
    return found


@pytest.mark.parametrize(
    ("query", "added"),
    [
        ("invoice from Acme", ["发票"]),
        ("报销单 李娜", ["expense", "claim", "reimbursement", "baoxiao", "lina"]),
        ("business trip to Beijing", ["出差", "差旅"]),
        ("trip to Beijing", []),  # "business trip" is the phrase; "trip" alone is no office term
        ("Kafka orders-v2 retention", []),
        ("Li Na expense claim", ["报销", "报销单", "费用", "lina"]),
        ("刘洋 深圳", ["liuyang", "shenzhen"]),
        ("on-call rota for Singles' Day", ["值班", "值班表", "排班", "双11", "双十一"]),  # phrases as words
    ],
)
def test_the_glossary_adds_the_other_languages_words(query: str, added: list[str]) -> None:
    assert expansions(query) == added


async def test_an_expansion_reaches_the_other_language_and_weighs_less(
    recall: RecallRuntime, alice: str
) -> None:
    await ingest(recall, alice, events(time.time_ns() - 3600 * NS_PER_S))
    index = recall.service.index

    async def titles(terms: str, more: str = "") -> list[str]:
        rows = await index.search(alice, terms, None, Filters(), 10, more, EXPANSION_BOOST)
        return list(dict.fromkeys(row["title"] for row in rows))  # a moment's rows, once

    assert await titles("invoice") == ["Invoice 7781 - Portal"]  # words alone: English only
    assert await titles("invoice", "发票") == ["Invoice 7781 - Portal", "发票 - 报销系统"]
    assert await titles("发票", "invoice") == ["发票 - 报销系统", "Invoice 7781 - Portal"]


async def test_a_name_or_place_is_found_across_scripts(recall: RecallRuntime, alice: str) -> None:
    await ingest(recall, alice, events(time.time_ns() - 3600 * NS_PER_S))

    async def titles(query: str) -> list[str]:
        rows = await recall.service.index.search(
            alice, query, None, Filters(), 10, " ".join(expansions(query)), EXPANSION_BOOST
        )
        return list(dict.fromkeys(row["title"] for row in rows))

    assert await titles("li na hangzhou") == ["差旅报销单 - OA"]
    assert await titles("刘洋") == ["Trip request TR-3307"]
    assert await titles("陈美") == []  # Mei Chen is "meichen"; 陈美 is "chenmei": no guess at name order


def test_names_are_kept_apart_from_translations() -> None:
    """A name is the same name in either script and weighs as a word of the query; a glossary
    translation weighs half (``EXPANSION_BOOST``)."""
    assert translations("Li Na expense claim") == ["报销", "报销单", "费用"]
    assert names("Li Na expense claim") == ["lina"]
    assert names("李娜的报销单") == ["lina", "baoxiao"]
