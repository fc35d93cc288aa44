"""What the sidebar's websockets share: authentication, sending and parsing JSON, cancelling on close."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from typing import Any

from fastapi import WebSocket

from cloud_infer.auth import TokenClaims, verify_token
from cloud_infer.config import ServerSettings
from cloud_infer.errors import AuthError

# Close code for a refused connection (bad token, feature off): "policy violation".
WS_POLICY_VIOLATION = 1008


def parse_message(raw: str, max_chars: int) -> dict[str, Any] | None:
    """A client message: a JSON object of at most ``max_chars`` characters, else None."""
    if len(raw) > max_chars:
        return None
    try:
        message = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return message if isinstance(message, dict) else None


async def cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them: a closed sidebar stops the generations it started."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*pending, return_exceptions=True)


async def authenticate(websocket: WebSocket, settings: ServerSettings) -> TokenClaims | None:
    """The claims of the read token in the query, or None after closing the socket with the reason."""
    token = websocket.query_params.get("token", "")
    try:
        return verify_token(settings.token_secret.get_secret_value(), token, "read")
    except AuthError as exc:
        await websocket.close(code=WS_POLICY_VIOLATION, reason=str(exc)[:120])
        return None


class JsonSender:
    """Sends JSON messages on one socket from several tasks, one whole message at a time."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._lock = asyncio.Lock()

    async def __call__(self, message: dict[str, Any]) -> None:
        async with self._lock:
            await self._websocket.send_text(json.dumps(message, ensure_ascii=False, default=str))
