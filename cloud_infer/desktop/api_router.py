"""HTTP and websocket routes of the thin client's desktops.

``WS /v1/desktop/{session_id}/rfb`` carries RFB (VNC) between noVNC in the page and the session's VNC
server. ``cloud_infer.http_guard`` has checked the token (offered as a subprotocol) and the Origin;
the socket is accepted first, so that a refusal reaches the page as a close code and reason it can
show (``not_found: …``, ``permission_denied: …``, ``unavailable: …``; code 1008 or 1013), and it is
closed with 4001 when the token expires (``open_live``): the page reconnects with its refreshed token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, WebSocket
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import ReadClaims, services
from cloud_infer.api_errors import error_responses, public_error
from cloud_infer.desktop.protocol import DesktopSessionList
from cloud_infer.desktop.relay import RfbRelay
from cloud_infer.desktop.service import DesktopService
from cloud_infer.errors import ERRORS, CloudInferError
from cloud_infer.live_socket import open_live

router = APIRouter(prefix="/v1/desktop", tags=["desktop"], responses=error_responses(403, 404))
_MAX_CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes


def _desktops(connection: HTTPConnection) -> DesktopService:
    return services(connection).desktop


DesktopDep = Annotated[DesktopService, Depends(_desktops)]
SessionId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description="The desktop session's id")
]


@router.get("/sessions", response_model=DesktopSessionList)
async def desktop_sessions(claims: ReadClaims, desktops: DesktopDep) -> DesktopSessionList:
    """Your sessions that have a desktop the thin client can show."""
    return DesktopSessionList(sessions=desktops.sessions(claims.user_id))


@router.websocket("/{session_id}/rfb")
async def rfb(websocket: WebSocket, desktops: DesktopDep, session_id: SessionId) -> None:
    """RFB between the page and the caller's own desktop (subprotocol auth, manage scope)."""
    async with open_live(websocket) as claims:
        try:
            desktop = await desktops.resolve(claims, session_id)
            reader, writer = await desktops.connect(desktop)
        except CloudInferError as exc:
            code, message = public_error(exc)
            reason = f"{code}: {message}".encode()[:_MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
            await websocket.close(code=ERRORS[code].websocket, reason=reason)
            return
        await RfbRelay(websocket, reader, writer, desktops.settings).run()
