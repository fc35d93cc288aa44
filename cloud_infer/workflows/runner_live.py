"""The runs websocket's session: every change of the caller's runs, as it happens.

Messages to the client: ``{"type": "run", "run": RunSummary}`` when a run changes (a step starts or
ends a phase, a question is asked or answered, it finishes), ``{"type": "step", "run_id", "step":
StepTrace}`` when a try of a step ends, ``{"type": "pong"}`` for a ping, and ``{"type": "error", "code",
"message"}``. A client more than 256 messages behind loses the oldest; ``GET /v1/workflows/runs/{id}``
reads a run whole.
"""

from __future__ import annotations

import asyncio

from fastapi import WebSocket, WebSocketDisconnect

from cloud_infer.errors import ErrorCode
from cloud_infer.live_socket import JsonSender, cancel_all, receive_message
from cloud_infer.workflows.runner_service import WorkflowRunService

_MAX_CLIENT_MESSAGE = 1024
_ONLY_PING = 'this socket only pushes; the one message it takes is {"type": "ping"}'


class RunUpdates:
    def __init__(self, websocket: WebSocket, runs: WorkflowRunService, user_id: str) -> None:
        self._websocket = websocket
        self._runs = runs
        self._user_id = user_id
        self._send = JsonSender(websocket)

    async def run(self) -> None:
        """Push changes until the client goes away."""
        with self._runs.subscribe(self._user_id) as changes:

            async def push() -> None:
                async for message in changes:
                    await self._send(message)

            pusher = asyncio.create_task(push(), name="workflow-runs-live-push")
            try:
                while True:
                    message = await receive_message(self._websocket, _MAX_CLIENT_MESSAGE)
                    if message is not None and message.get("type") == "ping":
                        await self._send({"type": "pong"})
                    else:
                        await self._send(
                            {"type": "error", "code": ErrorCode.INVALID_ARGUMENT, "message": _ONLY_PING}
                        )
            except WebSocketDisconnect:
                pass
            finally:
                await cancel_all([pusher])
