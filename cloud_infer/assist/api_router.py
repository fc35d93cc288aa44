"""Routes of assist: the caller's current context, and actions streamed over a websocket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from cloud_infer.api_deps import AssistDep, ReadClaims, ServicesDep
from cloud_infer.api_errors import error_responses
from cloud_infer.assist.protocol import AssistContext, RunMessage
from cloud_infer.errors import InvalidMessageError
from cloud_infer.live_socket import JsonSender, cancel_all, open_live, receive_message
from cloud_infer.llm.errors import LLMError, LLMRateLimitedError, LLMTimeoutError, LLMUnavailableError

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/assist", tags=["assist"], responses=error_responses())
_MAX_WS_MESSAGE = 16384  # a selection of MAX_TEXT_CHARS characters, JSON-escaped


@router.get("/context", response_model=AssistContext)
async def context(service: AssistDep, claims: ReadClaims) -> AssistContext:
    return await service.context(claims.user_id)


@router.websocket("/live")
async def live(websocket: WebSocket, services: ServicesDep) -> None:
    """Context updates as the user works, and actions streamed as deltas (subprotocol auth)."""
    async with open_live(websocket) as claims:
        await _live(websocket, services, claims.user_id)


async def _live(websocket: WebSocket, services: ServicesDep, user_id: str) -> None:
    service, recall = services.assist, services.recall
    updates = recall.pipeline.subscribe(user_id) if recall is not None else None
    runs: dict[str, asyncio.Task[None]] = {}
    send = JsonSender(websocket)

    async def send_context() -> None:
        current = await service.context(user_id)
        await send({"type": "context", "context": current.model_dump(mode="json")})

    async def push_context() -> None:
        while updates is not None:
            await updates.get()
            while not updates.empty():  # a burst of batches is one update
                updates.get_nowait()
            await send_context()

    async def run(message: RunMessage) -> None:
        try:
            async with contextlib.aclosing(
                service.run(user_id, message.action, message.text, message.question)
            ) as deltas:
                async for delta in deltas:
                    await send({"type": "delta", "id": message.id, "text": delta})
            await send({"type": "done", "id": message.id})
        except asyncio.CancelledError:
            raise
        except (InvalidMessageError, LLMError) as exc:
            await send({"type": "error", "id": message.id, **_error(exc)})
        except Exception:
            logger.exception("assist %s failed", message.action)
            await send({"type": "error", "id": message.id, "code": "internal", "message": "internal error"})

    pusher = asyncio.create_task(push_context(), name="assist-context-push")
    try:
        await send_context()
        while True:
            message = await receive_message(websocket, _MAX_WS_MESSAGE)
            kind = message.get("type") if message else None
            ident = str(message.get("id", ""))[:64] if message else ""
            if kind == "run":
                try:
                    request = RunMessage.model_validate(message)
                except ValidationError as exc:
                    problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                    await send({"type": "error", "id": ident, "code": "invalid_argument", "message": problem})
                    continue
                if request.id in runs and not runs[request.id].done():
                    runs[request.id].cancel()
                runs[request.id] = asyncio.create_task(run(request), name=f"assist-{request.action}")
            elif kind == "cancel" and ident in runs:
                runs.pop(ident).cancel()
            elif kind == "context":
                await send_context()
            else:
                await send({"type": "error", "id": ident, "code": "invalid_argument", "message": _UNKNOWN})
    except WebSocketDisconnect:
        pass
    finally:
        # A closed sidebar cancels its runs: the generations stop with them.
        await cancel_all([pusher, *runs.values()])
        if updates is not None and recall is not None:
            recall.pipeline.unsubscribe(user_id, updates)


_UNKNOWN = "messages are JSON objects of type run, cancel or context, under 16 KiB"


def _error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, InvalidMessageError):
        return {"code": "invalid_argument", "message": str(exc)}
    if isinstance(exc, LLMRateLimitedError):
        return {"code": "rate_limited", "message": str(exc), "retry_after_s": round(exc.retry_after_s, 1)}
    if isinstance(exc, LLMTimeoutError):
        return {"code": "timeout", "message": str(exc)}
    if isinstance(exc, LLMUnavailableError):
        return {"code": "unavailable", "message": str(exc)}
    return {"code": "failed", "message": str(exc)[:300]}
