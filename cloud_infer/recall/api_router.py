"""HTTP and websocket routes of Recall, scoped to the caller's token; erasure needs the manage scope."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import ManageClaims, ReadClaims, services
from cloud_infer.api_errors import error_responses
from cloud_infer.errors import BackendUnavailableError, ErrorCode
from cloud_infer.live_socket import JsonSender, cancel_all, error_fields, open_live, receive_message
from cloud_infer.recall.export import export_zip
from cloud_infer.recall.protocol import (
    DateReading,
    EraseRequest,
    EraseResponse,
    MomentResponse,
    SearchResponse,
)
from cloud_infer.recall.runtime import RecallRuntime
from cloud_infer.recall.suggestions import SuggestionsResponse, suggest
from cloud_infer.tenancy.requests import RequestLimiter

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/recall",
    tags=["recall"],
    responses=error_responses(403, 404),
)
_MAX_WS_MESSAGE = 8192


def _recall(connection: HTTPConnection) -> RecallRuntime:
    recall = services(connection).recall
    if recall is None:
        raise BackendUnavailableError("recall is disabled on this server")
    return recall


def _limits(connection: HTTPConnection) -> RequestLimiter:
    return services(connection).limits


# A websocket refused here is answered like a request: 503 ``unavailable`` before the handshake.
RecallDep = Annotated[RecallRuntime, Depends(_recall)]
LimitsDep = Annotated[RequestLimiter, Depends(_limits)]


@router.get("/search", response_model=SearchResponse)
async def search(
    claims: ReadClaims,
    runtime: RecallDep,
    q: Annotated[str, Query(max_length=500, description="Natural-language query, Chinese or English")] = "",
    app: Annotated[str | None, Query(max_length=128, description="Only this app id")] = None,
    title: Annotated[str | None, Query(max_length=200, description="Window title contains")] = None,
    url: Annotated[str | None, Query(max_length=500, description="URL contains")] = None,
    start: Annotated[datetime | None, Query(description="ISO-8601, inclusive")] = None,
    end: Annotated[datetime | None, Query(description="ISO-8601, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    tz: Annotated[str | None, Query(max_length=64, description="IANA zone for relative dates")] = None,
    dates: Annotated[
        DateReading, Query(description="A date in q: seen then or about then (both), or only one")
    ] = "both",
) -> SearchResponse:
    return await runtime.service.search(
        claims.user_id,
        q,
        tz=tz,
        start=start,
        end=end,
        app=app,
        title=title,
        url=url,
        limit=limit,
        dates=dates,
    )


@router.get("/suggestions", response_model=SuggestionsResponse)
async def suggestions(
    claims: ReadClaims,
    runtime: RecallDep,
    limits: LimitsDep,
    tz: Annotated[str | None, Query(max_length=64, description="IANA zone for relative dates")] = None,
) -> SuggestionsResponse:
    """First queries that find something in the caller's recent history (the sidebar's "Try this")."""
    # A few searches in one request: it counts against the user's search limits like one search.
    async with limits.admit("search", claims.user_id):
        return await suggest(runtime.service, claims.user_id, tz=tz)


@router.get("/moments/{moment_id}", response_model=MomentResponse)
async def get_moment(
    claims: ReadClaims, runtime: RecallDep, moment_id: str, q: Annotated[str, Query(max_length=500)] = ""
) -> MomentResponse:
    return await runtime.service.moment(claims.user_id, moment_id, q)


@router.delete("/moments/{moment_id}", response_model=EraseResponse)
async def forget_moment(claims: ManageClaims, runtime: RecallDep, moment_id: str) -> EraseResponse:
    """Erase one moment for good (manage scope)."""
    return await runtime.service.forget_moment(claims.user_id, moment_id)


@router.post("/erase", response_model=EraseResponse)
async def erase(claims: ManageClaims, runtime: RecallDep, body: EraseRequest) -> EraseResponse:
    """Erase a time range, or everything, for good (manage scope)."""
    service = runtime.service
    if body.everything:
        return await service.erase_everything(claims.user_id)
    assert body.start is not None and body.end is not None
    return await service.erase_range(claims.user_id, body.start, body.end)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def export(claims: ReadClaims, runtime: RecallDep) -> StreamingResponse:
    """A zip of the caller's history: events as JSON, frames, moments and settings."""
    chunks = export_zip(runtime.service, claims.user_id)
    return StreamingResponse(
        chunks,
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="shadowdesk-history.zip"'},
    )


@router.websocket("/live")
async def live(websocket: WebSocket, runtime: RecallDep, limits: LimitsDep) -> None:
    """New moments as they are indexed, and questions answered as a stream (subprotocol auth)."""
    async with open_live(websocket) as claims:
        await _live(websocket, runtime, limits, claims.user_id)


async def _live(websocket: WebSocket, runtime: RecallRuntime, limits: RequestLimiter, user_id: str) -> None:
    updates = runtime.pipeline.subscribe(user_id)
    answers: dict[str, asyncio.Task[None]] = {}
    send = JsonSender(websocket)

    async def push_updates() -> None:
        while True:
            rows = await updates.get()
            moments = {row.moment_id: row for row in rows}
            hits = [
                {
                    "moment_id": r.moment_id,
                    "time": r.time_ms,
                    "app_id": r.app_id,
                    "title": r.title,
                    "source": r.source,
                }
                for r in moments.values()
            ]
            await send({"type": "moments", "hits": hits})

    async def answer(ask_id: str, question: str, tz: str | None) -> None:
        try:
            # An ask is a search first: it counts against the user's search limits like one.
            async with limits.admit("search", user_id):
                result = await runtime.ask.ask(user_id, question, tz)
            async for delta in result.deltas():
                await send({"type": "answer.delta", "id": ask_id, "text": delta})
            final = result.final()
            citations = [c.model_dump(mode="json") for c in final.citations]
            done = {"type": "answer.done", "id": ask_id, "mode": final.mode, "text": final.text}
            await send({**done, "citations": citations})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.info("ask failed: %s", exc)
            await send({"type": "answer.error", "id": ask_id, **error_fields(exc)})

    pusher = asyncio.create_task(push_updates(), name="recall-live-push")
    try:
        while True:
            message = await receive_message(websocket, _MAX_WS_MESSAGE)
            if message is None:
                await send({"type": "error", "code": ErrorCode.INVALID_ARGUMENT, "message": _MALFORMED})
                continue
            ask_id = str(message.get("id", ""))[:64]
            if message.get("type") == "ask" and isinstance(message.get("question"), str):
                if ask_id in answers and not answers[ask_id].done():
                    answers[ask_id].cancel()
                tz = message.get("tz") if isinstance(message.get("tz"), str) else None
                answers[ask_id] = asyncio.create_task(answer(ask_id, message["question"][:500], tz))
            elif message.get("type") == "cancel" and ask_id in answers:
                answers.pop(ask_id).cancel()
            else:
                unknown = f"unknown message type {message.get('type')!r}"
                await send({"type": "error", "code": ErrorCode.INVALID_ARGUMENT, "message": unknown})
    except WebSocketDisconnect:
        pass
    finally:
        # A closed sidebar cancels its answers: the generation stops with them.
        await cancel_all([pusher, *answers.values()])
        runtime.pipeline.unsubscribe(user_id, updates)


_MALFORMED = "messages are JSON objects with a type, under 8 KiB"
