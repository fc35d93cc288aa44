"""Screen text that OCR reads without its spaces is still found by its words.

PP-OCRv4 drops most spaces between Latin words at desktop font sizes ("ApprovedbyZhangWei"); the
index adds the words of such runs (``text.unjoined_words``), so a search for "Zhang Wei" or "total
due" finds the frame. The frames are real OCR input: text drawn on a screen image.
"""

from __future__ import annotations

import time

import pytest

from cloud_infer.recall.index import Filters
from cloud_infer.recall.runtime import RecallRuntime
from cloud_infer.recall.text import unjoined_words
from tests.support.recall import NS_PER_S, focus, frame, ingest
from tests.support.screens import screen

# At 22 px on a 1024 x 640 frame, PP-OCRv4 reads the last line as "Meetingwith JohnSmith re ProjectFalcon".
LINES = [
    "Expense claim approved by Zhang Wei and Li Na",
    "Total due 1,280.00 USD for Consulting services",
    "Meeting with John Smith re Project Falcon",
]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ApprovedbyZhangWeiandLiNa", ["approved", "by", "zhang", "wei", "and", "li", "na"]),
        (
            "Totaldue1,280.00USDforConsultingservices",
            ["total", "due", "usd", "for", "consulting", "services"],
        ),
        ("差旅报销单ZhangWei报销金额", ["zhang", "wei"]),
        ("Invoice from Kubernetes deployment", []),  # words, not joined ones
        ("kafkaconfigs", []),  # no good cut: left whole
    ],
)
def test_the_words_of_a_run_together_line(text: str, words: list[str]) -> None:
    assert unjoined_words(text) == words


async def test_a_name_read_without_its_space_is_found_by_its_words(recall: RecallRuntime, alice: str) -> None:
    t = time.time_ns() - 600 * NS_PER_S
    await ingest(
        recall,
        alice,
        [
            focus(1, t, 21, "evince", "claim-0412.pdf"),
            frame(2, t + NS_PER_S, 21, screen(LINES, font_size=15)),
        ],
    )
    read = " ".join(row["text"] for row in await recall.service.index.rows(alice, Filters()))
    assert "JohnSmith" in read, f"OCR kept the space this time: {read!r}"  # the case under test
    for query in ("John Smith", "meeting with John", "Project Falcon"):
        hits = (await recall.service.search(alice, query)).hits
        assert hits and hits[0].moment_id.endswith(".1"), (query, read)
