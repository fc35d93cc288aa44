"""Answers over a user's history: extractive by default, "not found" rather than a guess, and a model's
answer kept only with citations it was given, cut short when it loops.

The history is real (the day of ``test_pipeline``: OCR, index, hybrid search). The looping and
mis-citing models are faults injected on purpose: a backend that says what the test scripts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from cloud_infer.llm.backend import Generation, GenerationRequest, Usage
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.llm.repetition import RepetitionGuard, loop_start
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.ask import FinalAnswer
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.embedder import Embedder
from cloud_infer.recall.ocr import OcrEngine
from cloud_infer.recall.runtime import RecallRuntime, open_recall
from recall_store.config import StoreSettings
from recall_store.factory import open_store
from tests.support.recall import NS_PER_S, day, ingest

START_NS = time.time_ns() - 3600 * NS_PER_S


class ScriptedModel:
    """A chat backend that streams ``deltas`` and counts how many were taken."""

    name = "scripted"
    max_concurrency = 1

    def __init__(self, deltas: list[str]) -> None:
        self.deltas = deltas
        self.taken = 0

    async def generate(self, request: GenerationRequest, deadline: float) -> Generation:
        for delta in self.deltas:
            self.taken += 1
            yield delta
        yield Usage(prompt_tokens=1, completion_tokens=len(self.deltas))

    async def close(self) -> None:
        pass


async def answer(
    runtime: RecallRuntime, user: str, question: str, tz: str = "UTC"
) -> tuple[str, FinalAnswer]:
    found = await runtime.ask.ask(user, question, tz)
    streamed = "".join([delta async for delta in found.deltas()])
    return streamed, found.final()


@pytest.fixture
async def with_model(
    tmp_path: object, embedder: Embedder, ocr_engine: OcrEngine, alice: str
) -> AsyncIterator[tuple[RecallRuntime, ScriptedModel]]:
    store_settings = StoreSettings(backend="local", local_root=f"{tmp_path}/store")
    store = open_store(store_settings)
    model = ScriptedModel([])
    llm = LLMGateway(LLMSettings(backend="embedded", capable=True), model)
    runtime = open_recall(
        RecallSettings(), store_settings, store, PrivacyService(store), llm, embedder, [ocr_engine]
    )
    await ingest(runtime, alice, day(START_NS))
    try:
        yield runtime, model
    finally:
        await runtime.close()
        await llm.close()
        await store.close()


async def test_without_a_capable_model_the_answer_is_the_historys_own_lines(
    recall: RecallRuntime, alice: str
) -> None:
    await ingest(recall, alice, day(START_NS))
    streamed, final = await answer(recall, alice, "How much was the Acme invoice?", "Asia/Shanghai")
    assert final.mode == "extractive" and streamed == final.text
    first = final.text.splitlines()[1]
    assert first.startswith("[1] ") and "1,280.00" in first and "INV-2041" in first, final.text
    local = time.strftime("%Y-%m-%d %H:", time.gmtime(START_NS / NS_PER_S + 8 * 3600))
    assert local in first  # the user's time zone, not UTC
    assert "INV-2041" in final.citations[0].title
    assert any(f.hit and f.text.lower() == "invoice" for f in final.citations[0].excerpt)


async def test_nothing_found_is_said_in_the_questions_language_without_a_guess(
    recall: RecallRuntime, alice: str
) -> None:
    await ingest(recall, alice, day(START_NS))
    for question, said in (
        ("我上个月的机票订单号是多少", "在你的历史记录中没有找到相关内容。"),
        ("What was my flight booking number?", "I could not find that in your history."),
    ):
        _, final = await answer(recall, "bob@example.com", question)  # bob has no history
        assert (final.mode, final.text, final.citations) == ("not_found", said, [])


async def test_a_hit_sharing_one_word_with_a_question_about_something_else_is_no_answer(
    recall: RecallRuntime, alice: str
) -> None:
    await ingest(recall, alice, day(START_NS))
    for question in (
        "What is the phone number of the Acme office?",
        "How much was the Globex invoice?",  # a name the history does not hold
        "王经理的体检报告结果怎么样",
    ):
        _, final = await answer(recall, alice, question)
        assert final.mode == "not_found", (question, final.text)
    _, final = await answer(recall, alice, "差旅报销单的审批人是谁")
    assert final.mode == "extractive" and "王经理" in final.text.splitlines()[1], final.text


async def test_a_looping_model_is_cut_short_and_keeps_only_what_it_cites(
    with_model: tuple[RecallRuntime, ScriptedModel], alice: str
) -> None:
    runtime, model = with_model
    model.deltas = ["The total due was 1,280.00 USD [1]. "] * 40
    streamed, final = await answer(runtime, alice, "How much was the Acme invoice?")
    assert final.mode == "model"
    assert final.text == "The total due was 1,280.00 USD [1]."
    assert [c.n for c in final.citations] == [1] and "INV-2041" in final.citations[0].title
    assert model.taken < 10, "the generation stopped at the loop"
    assert streamed.count("1,280.00") <= 2


@pytest.mark.parametrize(
    "said",
    ["I am not sure, it may be 990 USD.", "The total due was 1,280.00 USD [7].", "It was 1,280.00 USD [0]."],
)
async def test_a_model_answer_without_a_citation_it_was_given_becomes_the_extractive_one(
    with_model: tuple[RecallRuntime, ScriptedModel], alice: str, said: str
) -> None:
    runtime, model = with_model
    model.deltas = [said]
    _, final = await answer(runtime, alice, "How much was the Acme invoice?")
    assert final.mode == "extractive" and said not in final.text
    assert "1,280.00" in final.text.splitlines()[1]


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("abc " * 3, None),  # too short a span to be a loop
        ("The answer is 42. " * 3, len("The answer is 42. ")),
        ("Intro. " + "我记得发票金额是三百元。" * 3, len("Intro. 我记得发票金额是三百元。")),
        ("| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n", None),
    ],
)
def test_a_loop_is_three_copies_of_one_span(text: str, kept: int | None) -> None:
    assert loop_start(text) == kept


def test_the_guard_passes_text_until_the_loop_then_nothing() -> None:
    guard = RepetitionGuard()
    passed = [
        guard.feed(delta) for delta in ["Hello there. ", "Line one. ", "Line one. ", "Line one. ", "more"]
    ]
    assert guard.looped and guard.text == "Hello there. Line one. "
    assert "".join(passed) == "Hello there. Line one. Line one. "
