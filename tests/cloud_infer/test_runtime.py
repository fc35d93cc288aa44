"""Every capability's runtime has the one lifecycle of ``cloud_infer.runtime.Runtime``."""

from __future__ import annotations

import inspect

import pytest

from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.factory import open_gateway
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.recall.runtime import RecallRuntime
from cloud_infer.runtime import Runtime

RUNTIMES: list[type[Runtime]] = [RecallRuntime, LLMGateway]


@pytest.mark.parametrize("kind", RUNTIMES, ids=lambda k: k.__name__)
def test_start_in_the_loop_then_close(kind: type[Runtime]) -> None:
    assert not inspect.iscoroutinefunction(kind.start), "start() only schedules work"
    assert inspect.iscoroutinefunction(kind.close), "close() waits for the work to stop"


async def test_the_gateway_opens_starts_and_closes_like_recall() -> None:
    gateway = open_gateway(LLMSettings(backend="none"))
    gateway.start()
    await gateway.close()
