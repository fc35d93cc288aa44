"""The sidebar's "Try this": first queries taken from the user's own history, each found to have hits.

The history is real (the day of ``test_pipeline``: OCR, index, hybrid search): an English invoice
page, a terminal with Kafka settings and a Chinese expense claim.
"""

from __future__ import annotations

import re
import time

from cloud_infer.recall.runtime import RecallRuntime
from cloud_infer.recall.suggestions import DOCUMENT_ID, salient_words, suggest
from tests.support.recall import NS_PER_S, day, ingest

_HAN = re.compile(r"[\u3400-\u9fff]")


def _row(moment: str, title: str, text: str, time_ms: int = 0, app: str = "chromium") -> dict[str, object]:
    return {"moment_id": moment, "title": title, "text": text, "time_ms": time_ms, "app_id": app}


def test_a_document_id_is_taken_whole() -> None:
    text = "Contract HT-2026-0457 signed; trip TR-3318; not an id: ABC-12x, v2-10"
    assert DOCUMENT_ID.findall(text) == ["HT-2026-0457", "TR-3318"]


def test_a_word_of_every_moment_or_an_app_name_is_no_suggestion() -> None:
    rows = [
        _row(f"s.{n}", f"{topic} - Chromium", f"Settings Help quarterly {topic} 预算", n * 1000)
        for n, topic in enumerate(["invoice", "kafka", "roadmap", "payroll"])
    ]
    words = salient_words(rows)
    assert "quarterly" not in words and "预算" not in words  # on every screen
    assert "chromium" not in words and "settings" not in words
    # Each topic is in one title; the newest moment's ranks first.
    assert words[:4] == ["payroll", "roadmap", "kafka", "invoice"]


async def test_suggestions_come_from_the_history_in_both_languages_and_all_find_something(
    recall: RecallRuntime, alice: str
) -> None:
    await ingest(recall, alice, day(time.time_ns() - 3600 * NS_PER_S))
    found = await suggest(recall.service, alice, tz="Asia/Shanghai")
    assert found.history_new
    by_reason = {(s.reason, s.lang): s for s in found.suggestions}
    assert ("recent", "zh") in by_reason and ("recent", "en") in by_reason, found
    assert by_reason[("document_id", "en")].text == "INV-2041"
    assert {s.kind for s in found.suggestions} == {"search", "ask"}
    assert 4 <= len(found.suggestions) <= 6
    for suggestion in found.suggestions:
        assert suggestion.lang == ("zh" if _HAN.search(suggestion.text) else "en")
        assert not re.search(r"chromium|mousepad|xterm", suggestion.text, re.I)
        hits = (await recall.service.search(alice, suggestion.text)).hits
        assert hits and suggestion.hits >= 1, suggestion
    # The glossary's word in the other language finds a page written in the first one.
    cross = [s for s in found.suggestions if s.reason == "cross_lingual"]
    assert cross, found
    for suggestion in cross:
        top = (await recall.service.search(alice, suggestion.text)).hits[0]
        page = f"{top.title} {' '.join(f.text for f in top.snippet)}"
        assert suggestion.text.lower() not in page.lower(), (suggestion, page)


async def test_an_empty_history_gets_no_suggestion_and_none_of_another_users(
    recall: RecallRuntime, alice: str
) -> None:
    await ingest(recall, alice, day(time.time_ns() - 3600 * NS_PER_S))
    empty = await suggest(recall.service, f"bob-{alice}")
    assert empty.suggestions == [] and empty.history_new
