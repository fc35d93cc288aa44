"""Builds and owns the workflow capability for one server: recordings and macros, and macro runs.

The recorder's collector reads the committed stream as the consumer ``workflows`` (``consume``); runs
issue their steps through the one ``CommandService`` and resume, from the store, what a restart cut short.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud_infer.commands.service import CommandService
from cloud_infer.stream.fanout import Fanout
from cloud_infer.workflows.runner_config import RunnerSettings
from cloud_infer.workflows.runner_service import WorkflowRunService
from cloud_infer.workflows.service import WorkflowService
from recall_store.store import ObjectStore


@dataclass
class WorkflowsRuntime:
    service: WorkflowService
    runs: WorkflowRunService

    def consume(self, stream: Fanout) -> None:
        """Collect recorded actions from ``stream`` (register before it starts)."""
        self.service.consume(stream)

    def start(self) -> None:
        """Resume the runs a previous server left unfinished (in the background)."""
        self.runs.start()

    async def close(self) -> None:
        """Stop every run's task; unfinished runs stay in the store for the next server."""
        await self.runs.close()


def open_workflows(
    store: ObjectStore, commands: CommandService, settings: RunnerSettings
) -> WorkflowsRuntime:
    """Recordings, macros and runs over ``store``; nothing runs until ``start()``."""
    service = WorkflowService(store, commands)
    return WorkflowsRuntime(service, WorkflowRunService(store, commands, settings, macros=service.macros))
