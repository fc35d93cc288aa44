"""Routes of assist: the caller's current context, and actions streamed over a websocket."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import ReadClaims, services
from cloud_infer.api_errors import error_responses
from cloud_infer.assist.protocol import AssistContext, RunMessage
from cloud_infer.assist.service import AssistService
from cloud_infer.errors import ErrorCode
from cloud_infer.live_socket import JsonSender, cancel_all, error_fields, open_live, receive_message
from cloud_infer.recall.pipeline import RecallPipeline

router = APIRouter(prefix="/v1/assist", tags=["assist"], responses=error_responses())
_MAX_WS_MESSAGE = 16384  # a selection of MAX_TEXT_CHARS characters, JSON-escaped


def _assist(connection: HTTPConnection) -> AssistService:
    return services(connection).assist


def _indexed(connection: HTTPConnection) -> RecallPipeline | None:
    recall = services(connection).recall
    return recall.pipeline if recall is not None else None


AssistDep = Annotated[AssistService, Depends(_assist)]
# Where the user's newly indexed content is announced; None while Recall is off.
IndexedDep = Annotated[RecallPipeline | None, Depends(_indexed)]


@router.get("/context", response_model=AssistContext)
async def context(service: AssistDep, claims: ReadClaims) -> AssistContext:
    return await service.context(claims.user_id)


@router.websocket("/live")
async def live(websocket: WebSocket, service: AssistDep, indexed: IndexedDep) -> None:
    """Context updates as the user works, and actions streamed as deltas (subprotocol auth)."""
    async with open_live(websocket) as claims:
        await _live(websocket, service, indexed, claims.user_id)


async def _live(
    websocket: WebSocket, service: AssistService, indexed: RecallPipeline | None, user_id: str
) -> None:
    updates = indexed.subscribe(user_id) if indexed is not None else None
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
        except Exception as exc:
            await send({"type": "error", "id": message.id, **error_fields(exc)})

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
                    await send(
                        {"type": "error", "id": ident, "code": ErrorCode.INVALID_ARGUMENT, "message": problem}
                    )
                    continue
                if request.id in runs and not runs[request.id].done():
                    runs[request.id].cancel()
                runs[request.id] = asyncio.create_task(run(request), name=f"assist-{request.action}")
            elif kind == "cancel" and ident in runs:
                runs.pop(ident).cancel()
            elif kind == "context":
                await send_context()
            else:
                await send(
                    {"type": "error", "id": ident, "code": ErrorCode.INVALID_ARGUMENT, "message": _UNKNOWN}
                )
    except WebSocketDisconnect:
        pass
    finally:
        # A closed sidebar cancels its runs: the generations stop with them.
        await cancel_all([pusher, *runs.values()])
        if updates is not None and indexed is not None:
            indexed.unsubscribe(user_id, updates)


_UNKNOWN = "messages are JSON objects of type run, cancel or context, under 16 KiB"
