"""Bearer tokens: HS256 JWTs signed with ``ServerSettings.token_secret``.

An ``ingest`` token binds a user AND one desktop session (claim ``sid``), so a leaked agent token
cannot write into another session; a ``read`` token lets its subject read their own timeline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import jwt

from cloud_infer.errors import TokenExpiredError, TokenInvalidError
from recall_store.errors import InvalidNameError
from recall_store.naming import validate_id

Scope = Literal["ingest", "read"]
ALGORITHM = "HS256"
ISSUER = "shadowdesk"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    scope: Scope
    session_id: str | None
    expires_at: int


def issue_token(
    secret: str, user_id: str, scope: Scope, session_id: str | None = None, ttl_s: int = 3600
) -> str:
    """Sign a token for ``user_id``; ingest tokens need the ``session_id`` they are bound to."""
    validate_id("user id", user_id)
    if scope == "ingest":
        if session_id is None:
            raise ValueError("an ingest token needs a session id")
        validate_id("session id", session_id)
    elif scope != "read":
        raise ValueError(f"unknown scope {scope!r}")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": ISSUER,
        "sub": user_id,
        "scope": scope,
        "iat": now,
        "exp": now + ttl_s,
    }
    if scope == "ingest":
        claims["sid"] = session_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str, scope: Scope) -> TokenClaims:
    """Claims of a valid, unexpired token of ``scope``; else TokenInvalidError or TokenExpiredError."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "scope", "iss"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpiredError("token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenInvalidError(f"invalid token: {exc}") from exc
    if claims["scope"] != scope:
        raise TokenInvalidError(f"token has scope {claims['scope']!r}, this endpoint needs {scope!r}")
    session_id = claims.get("sid")
    try:
        validate_id("user id", str(claims["sub"]))
        if scope == "ingest":
            if not isinstance(session_id, str):
                raise TokenInvalidError("ingest token is not bound to a session")
            validate_id("session id", session_id)
    except InvalidNameError as exc:
        raise TokenInvalidError(f"invalid token: {exc}") from exc
    return TokenClaims(
        user_id=str(claims["sub"]),
        scope=scope,
        session_id=session_id if isinstance(session_id, str) else None,
        expires_at=int(claims["exp"]),
    )


def bearer_token(header: str | None) -> str:
    """The token of an ``authorization: Bearer <token>`` header value."""
    if not header:
        raise TokenInvalidError("missing authorization: Bearer <token>")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise TokenInvalidError("authorization must be 'Bearer <token>'")
    return token.strip()
