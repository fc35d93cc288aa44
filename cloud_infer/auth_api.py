"""Routes of sign-in: redeem a login ticket, refresh a token, revoke every token of the caller.

The sidebar opens with ``#login=<ticket>`` in its URL fragment (never sent to a server), redeems it
once here for a short-lived API token, keeps that token in memory and refreshes it before it expires,
up to ``session_max_s`` after the sign-in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import ManageClaims, ReadClaims, SettingsDep, services
from cloud_infer.api_errors import error_responses
from cloud_infer.auth import Scope, TokenAuthority
from cloud_infer.errors import TokenExpiredError
from cloud_infer.login import LoginTickets
from cloud_infer.revocation import Revocations

router = APIRouter(
    prefix="/v1/auth",
    tags=["auth"],
    responses=error_responses(403),
)


def _tokens(connection: HTTPConnection) -> TokenAuthority:
    return services(connection).tokens


def _revocations(connection: HTTPConnection) -> Revocations:
    return services(connection).revocations


def _logins(connection: HTTPConnection) -> LoginTickets:
    return services(connection).logins


TokensDep = Annotated[TokenAuthority, Depends(_tokens)]
RevocationsDep = Annotated[Revocations, Depends(_revocations)]
LoginsDep = Annotated[LoginTickets, Depends(_logins)]


class SessionRequest(BaseModel):
    ticket: str = Field(min_length=1, max_length=4096, description="A single-use login ticket")


class TokenResponse(BaseModel):
    token: str
    expires_at: datetime
    scopes: list[str]


class RevokeResponse(BaseModel):
    revoked_before: datetime


@router.post("/session", response_model=TokenResponse)
async def redeem(
    body: SessionRequest, tokens: TokensDep, revocations: RevocationsDep, logins: LoginsDep
) -> TokenResponse:
    """Exchange a login ticket, once, for an API token with what the ticket grants."""
    ticket = tokens.verify(body.ticket, "login")
    await revocations.check(ticket)
    logins.redeem(ticket)
    return _token(tokens, ticket.user_id, ticket.grants, int(ticket.issued_at))


@router.post("/refresh", response_model=TokenResponse)
async def refresh(claims: ReadClaims, tokens: TokensDep, settings: SettingsDep) -> TokenResponse:
    """A fresh token with the caller's scopes, while the sign-in is younger than ``session_max_s``."""
    if datetime.now(UTC).timestamp() - claims.auth_time > settings.session_max_s:
        raise TokenExpiredError("the sign-in is too old to refresh; open the sidebar from the client again")
    return _token(tokens, claims.user_id, claims.scopes & {"read", "manage"}, claims.auth_time)


@router.post("/revoke", response_model=RevokeResponse)
async def revoke(claims: ManageClaims, revocations: RevocationsDep) -> RevokeResponse:
    """Revoke every token of the caller issued until now, this one included."""
    before = await revocations.revoke(claims.user_id)
    return RevokeResponse(revoked_before=datetime.fromtimestamp(before, UTC))


_API_SCOPES: tuple[Scope, ...] = ("read", "manage")


def _token(tokens: TokenAuthority, user_id: str, scopes: frozenset[str], auth_time: int) -> TokenResponse:
    granted = [scope for scope in _API_SCOPES if scope in scopes]
    token = tokens.issue(user_id, granted, auth_time=auth_time)
    claims = tokens.verify(token, "read")
    return TokenResponse(
        token=token, expires_at=datetime.fromtimestamp(claims.expires_at, UTC), scopes=granted
    )
