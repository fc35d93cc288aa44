"""Routes of sign-in: redeem a login ticket, refresh a token, revoke every token of the caller.

The sidebar opens with ``#login=<ticket>`` in its URL fragment (never sent to a server), redeems it
once here for a short-lived API token, keeps that token in memory and refreshes it before it expires,
up to ``session_max_s`` after the sign-in.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from cloud_infer.api_deps import ManageClaims, ReadClaims, ServicesDep
from cloud_infer.api_errors import error_responses
from cloud_infer.auth import Scope
from cloud_infer.errors import TokenExpiredError

router = APIRouter(
    prefix="/v1/auth",
    tags=["auth"],
    responses=error_responses(403),
)


class SessionRequest(BaseModel):
    ticket: str = Field(min_length=1, max_length=4096, description="A single-use login ticket")


class TokenResponse(BaseModel):
    token: str
    expires_at: datetime
    scopes: list[str]


class RevokeResponse(BaseModel):
    revoked_before: datetime


@router.post("/session", response_model=TokenResponse)
async def redeem(body: SessionRequest, services: ServicesDep) -> TokenResponse:
    """Exchange a login ticket, once, for an API token with what the ticket grants."""
    ticket = services.tokens.verify(body.ticket, "login")
    await services.revocations.check(ticket)
    services.logins.redeem(ticket)
    return _token(services, ticket.user_id, ticket.grants, int(ticket.issued_at))


@router.post("/refresh", response_model=TokenResponse)
async def refresh(claims: ReadClaims, services: ServicesDep) -> TokenResponse:
    """A fresh token with the caller's scopes, while the sign-in is younger than ``session_max_s``."""
    if datetime.now(UTC).timestamp() - claims.auth_time > services.settings.session_max_s:
        raise TokenExpiredError("the sign-in is too old to refresh; open the sidebar from the client again")
    return _token(services, claims.user_id, claims.scopes & {"read", "manage"}, claims.auth_time)


@router.post("/revoke", response_model=RevokeResponse)
async def revoke(claims: ManageClaims, services: ServicesDep) -> RevokeResponse:
    """Revoke every token of the caller issued until now, this one included."""
    before = await services.revocations.revoke(claims.user_id)
    return RevokeResponse(revoked_before=datetime.fromtimestamp(before, UTC))


_API_SCOPES: tuple[Scope, ...] = ("read", "manage")


def _token(services: ServicesDep, user_id: str, scopes: frozenset[str], auth_time: int) -> TokenResponse:
    granted = [scope for scope in _API_SCOPES if scope in scopes]
    token = services.tokens.issue(user_id, granted, auth_time=auth_time)
    claims = services.tokens.verify(token, "read")
    return TokenResponse(
        token=token, expires_at=datetime.fromtimestamp(claims.expires_at, UTC), scopes=granted
    )
