"""The commands websocket's session: every change of the caller's commands, as it happens.

Messages to the client: ``{"type": "command", "command": <CommandView>}`` for each change (delivered,
running, finished) of a command on any of the caller's sessions, ``{"type": "pong"}`` for a ping, and
``{"type": "error", "code", "message"}``. A client that falls more than 256 changes behind loses the
oldest; it can read any command again with ``GET``.
"""

from __future__ import annotations

import asyncio

from fastapi import WebSocket, WebSocketDisconnect

from cloud_infer.commands.protocol import view_of
from cloud_infer.commands.service import CommandService
from cloud_infer.errors import ErrorCode
from cloud_infer.live_socket import JsonSender, cancel_all, receive_message

_MAX_CLIENT_MESSAGE = 1024
_ONLY_PING = 'this socket only pushes; the one message it takes is {"type": "ping"}'


class CommandUpdates:
    def __init__(self, websocket: WebSocket, commands: CommandService, user_id: str) -> None:
        self._websocket = websocket
        self._commands = commands
        self._user_id = user_id
        self._send = JsonSender(websocket)

    async def run(self) -> None:
        """Push changes until the client goes away."""
        with self._commands.subscribe(self._user_id) as changes:

            async def push() -> None:
                async for record in changes:
                    await self._send({"type": "command", "command": view_of(record).model_dump(mode="json")})

            pusher = asyncio.create_task(push(), name="commands-live-push")
            try:
                while True:
                    message = await receive_message(self._websocket, _MAX_CLIENT_MESSAGE)
                    if message is not None and message.get("type") == "ping":
                        await self._send({"type": "pong"})
                    else:
                        await self._send(
                            {
                                "type": "error",
                                "code": ErrorCode.INVALID_ARGUMENT,
                                "message": _ONLY_PING,
                            }
                        )
            except WebSocketDisconnect:
                pass
            finally:
                await cancel_all([pusher])
