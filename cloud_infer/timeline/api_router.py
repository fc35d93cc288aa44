"""HTTP routes of the timeline: window spans and the frame images they link to."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import ReadClaims, services
from cloud_infer.api_errors import error_responses
from cloud_infer.timeline.protocol import TimelineResponse, parse_window
from cloud_infer.timeline.service import TimelineService
from recall_store.event_log import FRAME_EXTENSIONS

router = APIRouter(
    prefix="/v1",
    tags=["timeline"],
    responses=error_responses(404),
)


def _timeline(connection: HTTPConnection) -> TimelineService:
    return services(connection).timeline


TimelineDep = Annotated[TimelineService, Depends(_timeline)]


@router.get("/timeline", response_model=TimelineResponse)
async def get_timeline(
    claims: ReadClaims,
    timeline: TimelineDep,
    start: Annotated[
        str | None, Query(description="ISO-8601 or epoch seconds; inclusive; default end - 24 h")
    ] = None,
    end: Annotated[str | None, Query(description="ISO-8601 or epoch seconds; exclusive; default now")] = None,
) -> TimelineResponse:
    window_start, window_end = parse_window(start, end)
    return await timeline.timeline(claims.user_id, window_start, window_end)


_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "/frames/{session_id}/{name}",
    response_class=Response,
    responses={
        200: {
            "description": "The frame as stored; a thumbnail is a JPEG",
            "content": {mime: _BINARY for mime in sorted(FRAME_EXTENSIONS)},
        }
    },
)
async def get_frame(
    claims: ReadClaims,
    timeline: TimelineDep,
    session_id: str,
    name: str,
    thumb: Annotated[bool, Query(description="downscale to at most 320x320 (JPEG)")] = False,
) -> Response:
    data, content_type = await timeline.frame(claims.user_id, session_id, name, thumb)
    # Never cached: a frame erased on the server must not live on in a browser.
    return Response(data, media_type=content_type, headers={"Cache-Control": "no-store"})
