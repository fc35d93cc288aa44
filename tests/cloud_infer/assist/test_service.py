"""Assist over a real Recall index and the real embedded model: the current context, and actions on it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from cloud_infer.assist.service import AssistService, _target_language
from cloud_infer.errors import InvalidMessageError
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.factory import open_gateway
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.recall.runtime import RecallRuntime
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.recall import NS_PER_S, focus, ingest

REPORT = "Quarterly report draft\nRevenue grew 12 percent in the third quarter\nCosts stayed flat"


def text(seq: int, t: int, window_id: int, app_id: str, body: str) -> pb.Event:
    snapshot = pb.TextSnapshot(window_id=window_id, app_id=app_id, source="accessibility", text=body)
    return pb.Event(seq=seq, time_unix_nano=t, text=snapshot)


def clipboard(seq: int, t: int, app_id: str, body: str) -> pb.Event:
    return pb.Event(
        seq=seq, time_unix_nano=t, clipboard=pb.ClipboardText(app_id=app_id, text=body, primary=True)
    )


def report_window(start_ns: int, selection: str) -> list[pb.Event]:
    return [
        focus(10, start_ns, 21, "mousepad", "report.txt - Mousepad"),
        text(11, start_ns + NS_PER_S, 21, "mousepad", REPORT),
        clipboard(12, start_ns + 2 * NS_PER_S, "mousepad", selection),
    ]


@pytest.fixture
async def llm() -> AsyncIterator[LLMGateway]:
    gateway = open_gateway(LLMSettings(backend="embedded", max_output_tokens=16))
    yield gateway
    await gateway.close()


async def collect(stream: AsyncIterator[str]) -> str:
    async with contextlib.aclosing(stream):  # type: ignore[type-var]
        return "".join([delta async for delta in stream])


async def test_context_is_the_latest_window_with_its_selection_and_text(
    recall: RecallRuntime, alice: str
) -> None:
    now = time.time_ns()
    earlier = [
        focus(1, now - 300 * NS_PER_S, 11, "xterm", "kafka-configs"),
        text(2, now - 299 * NS_PER_S, 11, "xterm", "log retention hours 168"),
    ]
    await ingest(recall, alice, earlier + report_window(now - 10 * NS_PER_S, "Costs stayed flat"))
    assist = AssistService(recall.service, LLMGateway(LLMSettings(backend="none"), None))
    context = await assist.context(alice)
    assert context.available
    assert (context.app_id, context.title) == ("mousepad", "report.txt - Mousepad")
    # The selected line was already on screen: a selection is kept whole all the same.
    assert context.selection == "Costs stayed flat"
    assert context.visible_text == REPORT
    assert not (await assist.context(f"bob-{alice}")).available


async def test_a_window_seen_long_ago_is_no_current_context(recall: RecallRuntime, alice: str) -> None:
    await ingest(recall, alice, report_window(time.time_ns() - 3600 * NS_PER_S, "Costs stayed flat"))
    assist = AssistService(recall.service, LLMGateway(LLMSettings(backend="none"), None))
    assert not (await assist.context(alice)).available


async def test_actions_stream_over_the_context_and_refuse_empty_work(
    recall: RecallRuntime, alice: str, llm: LLMGateway
) -> None:
    await ingest(recall, alice, report_window(time.time_ns() - 10 * NS_PER_S, "Revenue grew 12 percent"))
    assist = AssistService(recall.service, llm)
    assert (await collect(assist.run(alice, "summarize"))).strip()
    assert (await collect(assist.run(alice, "polish", text="this sentence have a error"))).strip()
    assert llm.usage(alice).features.keys() == {"assist.summarize", "assist.polish"}
    with pytest.raises(InvalidMessageError, match="needs a question"):
        await collect(assist.run(alice, "ask"))
    with pytest.raises(InvalidMessageError, match="nothing to work on"):
        await collect(assist.run(f"bob-{alice}", "translate"))


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("差旅报销单，报销金额 356 元", "English"),
        ("Please review the attached invoice", "Simplified Chinese (简体中文)"),
        ("审批 OK", "English"),
    ],
)
def test_translation_goes_between_chinese_and_english(text: str, target: str) -> None:
    assert _target_language(text) == target
