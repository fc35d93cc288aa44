"""Every capability's runtime has the one lifecycle of ``cloud_infer.runtime.Runtime``."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from cloud_infer.commands.service import CommandService
from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.runtime import DiagnosticsRuntime, open_diagnostics
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.factory import open_gateway
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.recall.runtime import RecallRuntime
from cloud_infer.runtime import Runtime
from cloud_infer.stream.config import StreamSettings
from cloud_infer.stream.fanout import Fanout
from cloud_infer.stream.runtime import open_stream
from cloud_infer.workflows.runner_config import RunnerSettings
from cloud_infer.workflows.runtime import WorkflowsRuntime, open_workflows
from recall_store.config import StoreSettings
from recall_store.directory import UserDirectory
from recall_store.factory import open_store

RUNTIMES: list[type[Runtime]] = [RecallRuntime, LLMGateway, Fanout, WorkflowsRuntime, DiagnosticsRuntime]


@pytest.mark.parametrize("kind", RUNTIMES, ids=lambda k: k.__name__)
def test_start_in_the_loop_then_close(kind: type[Runtime]) -> None:
    assert not inspect.iscoroutinefunction(kind.start), "start() only schedules work"
    assert inspect.iscoroutinefunction(kind.close), "close() waits for the work to stop"


async def test_the_gateway_opens_starts_and_closes_like_recall() -> None:
    gateway = open_gateway(LLMSettings(backend="none"))
    gateway.start()
    await gateway.close()


async def test_the_stream_workflows_and_diagnostics_open_consume_start_and_close(tmp_path: Path) -> None:
    store = open_store(StoreSettings(backend="local", local_root=tmp_path))
    try:
        stream = open_stream(StreamSettings(), store, UserDirectory(store))
        commands = CommandService(store)
        commands.consume(stream)
        workflows = open_workflows(store, commands, RunnerSettings())
        workflows.consume(stream)
        diagnostics = await open_diagnostics(
            store, DiagnosticsSettings(), "a-secret-for-this-test-0123", commands
        )
        diagnostics.consume(stream)
        assert stream.consumers == ["commands", "workflows", "diagnostics"]
        diagnostics.start()
        stream.start()
        workflows.start()
        await diagnostics.close()
        await workflows.close()
        await stream.close()
    finally:
        await store.close()
