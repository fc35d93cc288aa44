"""What the sidebar's websockets share: opening as the caller, reading JSON, sending, cancelling on close.

``cloud_infer.http_guard`` has already checked the token (offered as a subprotocol) and the Origin;
``open_live`` accepts with the Shadowdesk subprotocol and closes the socket when the token expires or
is revoked (checked every ``REVOCATION_CHECK_S``, through the server's cached ``Revocations``), with the
close code of ``unauthenticated``, 4001: the sidebar reconnects with its refreshed token. An error
message on a socket carries the code and message an HTTP answer would (``error_fields``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from cloud_infer.api_deps import caller, services
from cloud_infer.api_errors import public_error
from cloud_infer.auth import TokenClaims
from cloud_infer.errors import ERRORS, BackendUnavailableError, ErrorCode, TokenInvalidError
from cloud_infer.http_guard import SUBPROTOCOL

WS_UNSUPPORTED_DATA = 1003  # a binary frame: a protocol matter, before any message has a meaning
WS_TOKEN_EXPIRED = ERRORS[ErrorCode.UNAUTHENTICATED].websocket
MAX_MESSAGE_BYTES = 64 * 1024  # uvicorn refuses larger frames before they reach a handler
REVOCATION_CHECK_S = 10.0  # as long as the revocations cache: a revoked socket closes within ~20 s


@contextlib.asynccontextmanager
async def open_live(websocket: WebSocket) -> AsyncIterator[TokenClaims]:
    """Accept the socket for the caller; it is closed when their token expires or is revoked."""
    claims = caller(websocket).require("read")
    revocations = services(websocket).revocations
    await websocket.accept(subprotocol=SUBPROTOCOL)

    async def close_when_invalid() -> None:
        reason = "token expired"
        while (left := claims.expires_at - time.time()) > 0:
            await asyncio.sleep(min(left, REVOCATION_CHECK_S))
            try:
                await revocations.check(claims)
            except TokenInvalidError:
                reason = "token revoked"
                break
            except BackendUnavailableError:
                continue  # the token was good when the socket opened and still expires on time
        with contextlib.suppress(RuntimeError):  # already closing
            await websocket.close(code=WS_TOKEN_EXPIRED, reason=reason)

    watchdog = asyncio.create_task(close_when_invalid(), name="live-socket-watchdog")
    try:
        yield claims
    finally:
        await cancel_all([watchdog])


async def receive_message(websocket: WebSocket, max_chars: int) -> dict[str, Any] | None:
    """The next client message as a JSON object of at most ``max_chars``, else None.

    A binary frame closes the socket (1003: this protocol is JSON text); a disconnect raises
    WebSocketDisconnect.
    """
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    raw = message.get("text")
    if raw is None:
        await websocket.close(code=WS_UNSUPPORTED_DATA, reason="messages are JSON text")
        raise WebSocketDisconnect(WS_UNSUPPORTED_DATA)
    return parse_message(raw, max_chars)


def parse_message(raw: str, max_chars: int) -> dict[str, Any] | None:
    """A client message: a JSON object of at most ``max_chars`` characters, else None."""
    if len(raw) > max_chars:
        return None
    try:
        message = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return message if isinstance(message, dict) else None


def error_fields(exc: BaseException) -> dict[str, Any]:
    """``code``, ``message`` and ``retry_after_s`` (when the error has one) of an error message."""
    code, message = public_error(exc)
    fields: dict[str, Any] = {"code": code, "message": message}
    retry_after_s = getattr(exc, "retry_after_s", None)
    if retry_after_s is not None:
        fields["retry_after_s"] = round(retry_after_s, 1)
    return fields


async def cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them: a closed sidebar stops the generations it started."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*pending, return_exceptions=True)


_ONLY_PING = 'this socket only pushes; the one message it takes is {"type": "ping"}'
_MAX_PING_MESSAGE = 1024


async def push_changes(websocket: WebSocket, changes: AsyncIterator[dict[str, Any]], name: str) -> None:
    """Send every message of ``changes`` until the client goes away; answer its pings meanwhile.

    For the push-only sockets (command results, workflow runs): any message but a ping gets an error.
    """
    send = JsonSender(websocket)

    async def push() -> None:
        async for message in changes:
            await send(message)

    pusher = asyncio.create_task(push(), name=name)
    try:
        while True:
            message = await receive_message(websocket, _MAX_PING_MESSAGE)
            if message is not None and message.get("type") == "ping":
                await send({"type": "pong"})
            else:
                await send({"type": "error", "code": ErrorCode.INVALID_ARGUMENT, "message": _ONLY_PING})
    except WebSocketDisconnect:
        pass
    finally:
        await cancel_all([pusher])


class JsonSender:
    """Sends JSON messages on one socket from several tasks, one whole message at a time."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._lock = asyncio.Lock()

    async def __call__(self, message: dict[str, Any]) -> None:
        async with self._lock:
            await self._websocket.send_text(json.dumps(message, ensure_ascii=False, default=str))
