"""Bearer tokens: HS256 JWTs with a key id, an audience, scopes and a bounded lifetime.

Scopes: ``ingest`` (one desktop session's agent; claim ``sid`` binds it to that session), ``read`` (the
caller's own history and settings), ``manage`` (destructive or privacy-reducing changes: erasure,
unpausing, removing exclusions, retention; commanding one's own desktops) and ``admin`` (an operator:
remediation commands to any user's desktop, ``cloud_infer.commands.policy``; nothing of a user's history).
The ops roles (``OPS_ROLES``, weakest first, each including the ones before it): ``ops_view`` reads the
fleet's ops data, ``ops_operate`` also runs the actions that are not risky, and ``admin`` does everything,
approving risky actions and revealing whose a session is among it. ``ops_console`` is the admin console's
own service token: it only exchanges a console user's sign-in for a short-lived token of that user's role,
for the subject ``console.<username>``. That namespace is the console's: a token for it carries ``read``
and ops roles only (never ``ingest``, ``manage`` or a login), so no desktop user can be named into it and
it never holds a user's history. A ``login`` ticket is not an API token: it is redeemed once at ``POST
/v1/auth/session`` for a read (and maybe manage) token, so no token ever rides in a URL. Every token names
its key (``kid``): new tokens are signed with the current key, and earlier keys stay valid for
verification while their tokens live out a rotation. A token whose lifetime exceeds its kind's maximum is
refused even when correctly signed. Revocation (tokens of a user issued before a time) is checked by
``cloud_infer.revocation``, which needs the store.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import jwt

from cloud_infer.config import ServerSettings
from cloud_infer.errors import PermissionDeniedError, TokenExpiredError, TokenInvalidError
from recall_store.errors import InvalidNameError
from recall_store.naming import validate_id

Scope = Literal["ingest", "read", "manage", "admin", "login", "ops_view", "ops_operate", "ops_console"]
SCOPES: frozenset[str] = frozenset(
    {"ingest", "read", "manage", "admin", "login", "ops_view", "ops_operate", "ops_console"}
)
OpsRole = Literal["ops_view", "ops_operate", "admin"]
OPS_ROLES: tuple[OpsRole, ...] = ("ops_view", "ops_operate", "admin")
# The admin console's users, as the cloud names them (``console.<username>``).
CONSOLE_SUBJECT_PREFIX = "console."
ALGORITHM = "HS256"
ISSUER = "shadowdesk"
# One audience per kind of token: an agent's token opens no API route and a read token no stream.
AUDIENCE_API = "shadowdesk-api"
AUDIENCE_INGEST = "shadowdesk-ingest"
AUDIENCE_LOGIN = "shadowdesk-login"
_CLOCK_LEEWAY_S = 30
DEFAULT_KEY_ID = "k1"  # ServerSettings.token_key_id's default


def _audience(scopes: Iterable[str]) -> str:
    scopes = set(scopes)
    if scopes == {"ingest"}:
        return AUDIENCE_INGEST
    if "login" in scopes:
        return AUDIENCE_LOGIN
    return AUDIENCE_API


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    scopes: frozenset[str]
    session_id: str | None
    issued_at: float
    expires_at: int
    token_id: str
    # When the person signed in: refreshed tokens keep it, so a sidebar session has a hard end.
    auth_time: int
    # What a login ticket grants once redeemed.
    grants: frozenset[str] = frozenset()

    def require(self, scope: Scope) -> TokenClaims:
        """Self if the token carries ``scope``, else PermissionDeniedError (a valid token, too weak)."""
        if scope not in self.scopes:
            raise PermissionDeniedError(f"this needs a token with the {scope!r} scope")
        return self

    def require_ops(self, role: OpsRole) -> TokenClaims:
        """Self if the token carries ``role`` or a stronger ops role, else PermissionDeniedError."""
        if not self.scopes & set(OPS_ROLES[OPS_ROLES.index(role) :]):
            raise PermissionDeniedError(f"this needs the {role!r} ops role or a stronger one")
        return self


class TokenAuthority:
    """Issues and verifies tokens with the server's keys and lifetime limits."""

    def __init__(
        self,
        current_key_id: str,
        keys: Mapping[str, str],
        *,
        ttl_s: int = 3600,
        max_ttl_s: int = 86400,
        ingest_ttl_s: int = 7 * 86400,
        ingest_max_ttl_s: int = 30 * 86400,
        login_ttl_s: int = 600,
    ) -> None:
        if current_key_id not in keys:
            raise ValueError(f"no secret for the current key id {current_key_id!r}")
        self._kid = current_key_id
        self._keys = dict(keys)
        self._ttl = {"api": ttl_s, "ingest": ingest_ttl_s, "login": login_ttl_s}
        self._max_ttl = {"api": max_ttl_s, "ingest": ingest_max_ttl_s, "login": login_ttl_s}

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> TokenAuthority:
        keys = {kid: secret.get_secret_value() for kid, secret in settings.token_previous_keys.items()}
        keys[settings.token_key_id] = settings.token_secret.get_secret_value()
        return cls(
            settings.token_key_id,
            keys,
            ttl_s=settings.token_ttl_s,
            max_ttl_s=settings.token_max_ttl_s,
            ingest_ttl_s=settings.ingest_token_ttl_s,
            ingest_max_ttl_s=settings.ingest_token_max_ttl_s,
            login_ttl_s=settings.login_ticket_ttl_s,
        )

    def issue(
        self,
        user_id: str,
        scopes: Iterable[Scope],
        *,
        session_id: str | None = None,
        ttl_s: int | None = None,
        grants: Iterable[Scope] = (),
        auth_time: int | None = None,
    ) -> str:
        """Sign a token for ``user_id``; ingest tokens need the ``session_id`` they are bound to."""
        validate_id("user id", user_id)
        wanted = frozenset(scopes)
        if not _fits_namespace(user_id, wanted):
            raise ValueError(f"{CONSOLE_SUBJECT_PREFIX}* subjects are console users: read and ops roles only")
        if not wanted or not wanted <= SCOPES:
            raise ValueError(f"scopes must be a non-empty subset of {sorted(SCOPES)}, got {sorted(wanted)}")
        if "ingest" in wanted and wanted != {"ingest"}:
            raise ValueError("an ingest token carries no other scope")
        if "login" in wanted and wanted != {"login"}:
            raise ValueError("a login ticket carries no other scope; put what it grants in grants")
        kind = _kind(wanted)
        if kind == "api" and "read" not in wanted:
            raise ValueError("an API token always carries read; the other scopes come on top of it")
        if kind == "ingest":
            if session_id is None:
                raise ValueError("an ingest token needs a session id")
            validate_id("session id", session_id)
        granted = frozenset(grants)
        if kind == "login" and (not granted or not granted <= {"read", "manage"}):
            raise ValueError("a login ticket grants read, and maybe manage")
        ttl = self._ttl[kind] if ttl_s is None else ttl_s
        if not 0 < ttl <= self._max_ttl[kind]:
            raise ValueError(f"a {kind} token lives 1..{self._max_ttl[kind]} s, not {ttl}")
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": ISSUER,
            "aud": _audience(wanted),
            "sub": user_id,
            "scope": " ".join(sorted(wanted)),
            "iat": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(12),
            "auth_time": now if auth_time is None else auth_time,
        }
        if session_id is not None:
            claims["sid"] = session_id
        if granted:
            claims["grants"] = " ".join(sorted(granted))
        return jwt.encode(claims, self._keys[self._kid], algorithm=ALGORITHM, headers={"kid": self._kid})

    def verify(self, token: str, scope: Scope) -> TokenClaims:
        """Claims of a valid, unexpired token carrying ``scope``; else an AuthError.

        TokenInvalidError: malformed, unknown key, bad signature, wrong audience, lifetime over the
        maximum, or without ``scope``; TokenExpiredError: past its expiry.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenInvalidError(f"invalid token: {exc}") from exc
        kid = header.get("kid")
        secret = self._keys.get(kid) if isinstance(kid, str) else None
        if secret is None:
            raise TokenInvalidError("invalid token: unknown or missing key id")
        audience = {"ingest": AUDIENCE_INGEST, "login": AUDIENCE_LOGIN}.get(scope, AUDIENCE_API)
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                audience=audience,
                leeway=_CLOCK_LEEWAY_S,
                options={"require": ["exp", "iat", "sub", "scope", "iss", "aud", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpiredError("token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenInvalidError(f"invalid token: {exc}") from exc
        scopes = frozenset(str(claims["scope"]).split())
        if scope not in scopes:
            raise TokenInvalidError(f"token has scope {claims['scope']!r}, this needs {scope!r}")
        kind = _kind(scopes)
        if int(claims["exp"]) - int(claims["iat"]) > self._max_ttl[kind]:
            raise TokenInvalidError(f"invalid token: lives longer than a {kind} token may")
        session_id = claims.get("sid")
        try:
            validate_id("user id", str(claims["sub"]))
            if kind == "ingest":
                if not isinstance(session_id, str):
                    raise TokenInvalidError("ingest token is not bound to a session")
                validate_id("session id", session_id)
        except InvalidNameError as exc:
            raise TokenInvalidError(f"invalid token: {exc}") from exc
        if not _fits_namespace(str(claims["sub"]), scopes):
            raise TokenInvalidError(f"invalid token: a {CONSOLE_SUBJECT_PREFIX}* subject with user scopes")
        return TokenClaims(
            user_id=str(claims["sub"]),
            scopes=scopes,
            session_id=session_id if isinstance(session_id, str) else None,
            issued_at=float(claims["iat"]),
            expires_at=int(claims["exp"]),
            token_id=str(claims["jti"]),
            auth_time=int(claims.get("auth_time", claims["iat"])),
            grants=frozenset(str(claims.get("grants", "")).split()) & {"read", "manage"},
        )


def _fits_namespace(user_id: str, scopes: frozenset[str]) -> bool:
    """A console subject only reads ops data; any other subject may have any scopes."""
    return not user_id.startswith(CONSOLE_SUBJECT_PREFIX) or scopes <= {"read", *OPS_ROLES}


def _kind(scopes: frozenset[str]) -> Literal["api", "ingest", "login"]:
    if "ingest" in scopes:
        return "ingest"
    if "login" in scopes:
        return "login"
    return "api"


def issue_token(
    secret: str,
    user_id: str,
    scope: Scope | Iterable[Scope],
    *,
    session_id: str | None = None,
    ttl_s: int | None = None,
    grants: Iterable[Scope] = (),
    key_id: str = DEFAULT_KEY_ID,
) -> str:
    """A token signed with ``secret`` under ``key_id`` and the default lifetime limits (CLI, tests)."""
    scopes: list[Scope] = [scope] if isinstance(scope, str) else list(scope)
    return TokenAuthority(key_id, {key_id: secret}).issue(
        user_id, scopes, session_id=session_id, ttl_s=ttl_s, grants=grants
    )


def bearer_token(header: str | None) -> str:
    """The token of an ``authorization: Bearer <token>`` header value."""
    if not header:
        raise TokenInvalidError("missing authorization: Bearer <token>")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise TokenInvalidError("authorization must be 'Bearer <token>'")
    return token.strip()
