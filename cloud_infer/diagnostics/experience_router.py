"""The thin client's side of ops diagnostics: ``POST /v1/desktop/{session_id}/experience`` (its reports)
and ``WS /v1/desktop/echo`` (what it times its round trip by).

A report is for the caller's own desktop only, decided where the RFB relay decides it
(``cloud_infer.desktop.service.DesktopService.resolve``: another user's session is refused, an unknown
one is not found): only the page that may open a desktop has an experience of it to report. The echo
answers each text message at once with the same text over a websocket to the same origin as the RFB
socket, so the page times the path its frames take (through the same proxies, on a connection already
open) without the frames' own queue: that shows in the frame delay and input latency instead.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Response, WebSocket, WebSocketDisconnect

from cloud_infer.api_deps import ReadClaims
from cloud_infer.api_errors import error_responses
from cloud_infer.desktop.api_router import DesktopDep, SessionId
from cloud_infer.diagnostics.api_router import DiagnosticsDep
from cloud_infer.diagnostics.experience import ExperienceReport
from cloud_infer.live_socket import WS_UNSUPPORTED_DATA, open_live

router = APIRouter(
    prefix="/v1/desktop", tags=["ops diagnostics"], responses=error_responses(403, 404, 413, 503)
)

# The page pings every second; a socket silent for a minute is a page that went away.
ECHO_IDLE_S = 60.0
ECHO_SEND_S = 5.0
MAX_ECHO_CHARS = 64
_WS_TOO_BIG = 1009
_WS_GOING_AWAY = 1001


@router.post("/{session_id}/experience", status_code=204, response_class=Response)
async def report_experience(
    claims: ReadClaims,
    desktops: DesktopDep,
    diagnostics: DiagnosticsDep,
    session_id: SessionId,
    report: ExperienceReport,
) -> Response:
    """Record one window of what the thin client measured on the caller's own desktop session."""
    desktop = await desktops.resolve(claims, session_id)
    await diagnostics.record_experience(desktop.owner, desktop.session_id, report)
    return Response(status_code=204)


@router.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    """Each text message (at most ``MAX_ECHO_CHARS``) straight back; closed after ``ECHO_IDLE_S`` idle."""
    async with open_live(websocket):
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                try:
                    async with asyncio.timeout(ECHO_IDLE_S):
                        message = await websocket.receive()
                except TimeoutError:
                    await websocket.close(code=_WS_GOING_AWAY, reason="idle")
                    return
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:
                    await websocket.close(code=WS_UNSUPPORTED_DATA, reason="messages are text")
                    return
                if len(text) > MAX_ECHO_CHARS:
                    await websocket.close(code=_WS_TOO_BIG, reason=f"at most {MAX_ECHO_CHARS} characters")
                    return
                try:
                    async with asyncio.timeout(ECHO_SEND_S):
                        await websocket.send_text(text)
                except TimeoutError:
                    return  # a page that does not read its answers has gone
