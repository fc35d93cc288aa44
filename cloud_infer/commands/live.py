"""The commands websocket's session: every change of the caller's commands, as it happens.

Messages to the client: ``{"type": "command", "command": <CommandView>}`` for each change (delivered,
running, finished) of a command on any of the caller's sessions, ``{"type": "pong"}`` for a ping, and
``{"type": "error", "code", "message"}``. A client that falls more than 256 changes behind loses the
oldest; it can read any command again with ``GET``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import WebSocket

from cloud_infer.commands.protocol import view_of
from cloud_infer.commands.service import CommandService
from cloud_infer.live_socket import push_changes


async def push_command_updates(websocket: WebSocket, commands: CommandService, user_id: str) -> None:
    """Push changes of ``user_id``'s commands until the client goes away."""
    with commands.subscribe(user_id) as changes:

        async def messages() -> AsyncIterator[dict[str, Any]]:
            async for record in changes:
                yield {"type": "command", "command": view_of(record).model_dump(mode="json")}

        await push_changes(websocket, messages(), "commands-live-push")
