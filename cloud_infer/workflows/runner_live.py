"""The runs websocket's session: every change of the caller's runs, as it happens.

Messages to the client: ``{"type": "run", "run": RunSummary}`` when a run changes (a step starts or
ends a phase, a question is asked or answered, it finishes), ``{"type": "step", "run_id", "step":
StepTrace}`` when a try of a step ends, ``{"type": "pong"}`` for a ping, and ``{"type": "error", "code",
"message"}``. A client more than 256 messages behind loses the oldest; ``GET /v1/workflows/runs/{id}``
reads a run whole.
"""

from __future__ import annotations

from fastapi import WebSocket

from cloud_infer.live_socket import push_changes
from cloud_infer.workflows.runner_service import WorkflowRunService


async def push_run_updates(websocket: WebSocket, runs: WorkflowRunService, user_id: str) -> None:
    """Push changes of ``user_id``'s runs until the client goes away."""
    with runs.subscribe(user_id) as changes:
        await push_changes(websocket, aiter(changes), "workflow-runs-live-push")
