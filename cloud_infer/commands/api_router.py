"""HTTP and websocket routes of commands: issue, read and cancel commands of a desktop session.

Whose session a request addresses, and what its caller may do there, is decided by
``cloud_infer.commands.policy``: the session is looked up in the caller's own space (admins name the
owner with ``?user=``), never taken from the body.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, WebSocket
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import ReadClaims, services
from cloud_infer.api_errors import error_responses
from cloud_infer.commands import policy
from cloud_infer.commands.live import push_command_updates
from cloud_infer.commands.protocol import (
    CommandRequest,
    CommandView,
    SessionList,
    SessionView,
    action_of,
    view_of,
)
from cloud_infer.commands.service import CommandService, SessionRef
from cloud_infer.live_socket import open_live

router = APIRouter(prefix="/v1", tags=["commands"], responses=error_responses(403, 404))


def _commands(connection: HTTPConnection) -> CommandService:
    return services(connection).commands


CommandsDep = Annotated[CommandService, Depends(_commands)]
SessionId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description="The desktop session's id")
]
CommandId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Owner = Annotated[
    str | None,
    Query(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$",
        description="The session's owner, for admins; others address their own sessions only.",
    ),
]


@router.get("/sessions", response_model=SessionList)
async def list_sessions(claims: ReadClaims, commands: CommandsDep) -> SessionList:
    """Your desktop sessions (each one an agent of yours has opened), and which are connected now."""
    found = await commands.sessions(claims.user_id)
    return SessionList(sessions=[SessionView(session_id=sid, connected=live) for sid, live in found])


@router.post("/sessions/{session_id}/commands", response_model=CommandView)
async def issue_command(
    claims: ReadClaims, commands: CommandsDep, session_id: SessionId, body: CommandRequest, user: Owner = None
) -> CommandView:
    """Queue a command for the session's agent; the same idempotency key again returns the first one."""
    owner = policy.target_owner(claims, user)
    issuer = policy.issuer_for(claims, issuing=True)
    record = await commands.issue(
        SessionRef(owner, session_id),
        action_of(body),
        issuer=issuer,
        deadline_s=body.deadline_s,
        idempotency_key=body.idempotency_key,
        secret=body.secret.get_secret_value() if body.secret is not None else None,
    )
    return view_of(record)


@router.get("/sessions/{session_id}/commands/{command_id}", response_model=CommandView)
async def get_command(
    claims: ReadClaims,
    commands: CommandsDep,
    session_id: SessionId,
    command_id: CommandId,
    user: Owner = None,
) -> CommandView:
    """The command's status and, once finished, what the agent reported."""
    owner = policy.target_owner(claims, user)
    issuer = policy.issuer_for(claims, issuing=False)
    return view_of(await commands.get(SessionRef(owner, session_id), command_id, issuer=issuer))


@router.post("/sessions/{session_id}/commands/{command_id}/cancel", response_model=CommandView)
async def cancel_command(
    claims: ReadClaims,
    commands: CommandsDep,
    session_id: SessionId,
    command_id: CommandId,
    user: Owner = None,
) -> CommandView:
    """Cancel: a command not yet delivered is dropped; a delivered one is sent a CancelCommand."""
    owner = policy.target_owner(claims, user)
    issuer = policy.issuer_for(claims, issuing=False)
    return view_of(await commands.cancel(SessionRef(owner, session_id), command_id, issuer=issuer))


@router.websocket("/commands/live")
async def live(websocket: WebSocket, commands: CommandsDep) -> None:
    """Every change of the caller's commands, on any of their sessions (subprotocol auth)."""
    async with open_live(websocket) as claims:
        await push_command_updates(websocket, commands, claims.user_id)
