"""Who may command which session to do what: the one place this is decided in the cloud.

* A **user** commands only their own sessions (the session's owner is the space its outbox lives in,
  written when the owner's ingest token opened it), with any kind of command (also ``recording``:
  a user may record a demonstration on their own desktop); issuing needs a token with the ``manage``
  scope (a read token can look, not act), reading and cancelling needs ``read``.
* An **admin** (a token with the ``admin`` scope, ``shadowdesk token --scope admin``) sends
  ``Remediation`` commands to any user's session, and reads or cancels those; nothing else (never a
  recording: what a user does on their desktop is theirs).
* The **system** (internal callers of the Python API: workflow runners, diagnostics) may do anything;
  no HTTP request ever acts as the system.

A user's **desktop** (the thin client's screen and input, ``cloud_infer.desktop``) is reached by that
user alone, with a ``manage`` token (input acts on the desktop); an admin never sees a user's screen.

The agent checks its own allow-list of action types as well; a refusal there is a ``refused`` result.
"""

from __future__ import annotations

from cloud_infer.auth import TokenClaims
from cloud_infer.commands.records import CommandKind, CommandRecord, Issuer, IssuerKind
from cloud_infer.errors import PermissionDeniedError

ADMIN_SCOPE = "admin"
_ADMIN_KINDS: frozenset[CommandKind] = frozenset({"remediation"})


def issuer_for(claims: TokenClaims, *, issuing: bool) -> Issuer:
    """The issuer an HTTP caller acts as; issuing as a user needs the manage scope."""
    if ADMIN_SCOPE in claims.scopes:
        return Issuer.admin(claims.user_id)
    if issuing:
        claims.require("manage")
    return Issuer.user(claims.user_id)


def target_owner(claims: TokenClaims, user: str | None) -> str:
    """Whose session an HTTP request addresses: the caller's own, or (admins only) ``user``'s."""
    if user is None or user == claims.user_id:
        return claims.user_id
    if ADMIN_SCOPE not in claims.scopes:
        raise PermissionDeniedError("you may command only your own sessions")
    return user


def check_issue(issuer: Issuer, owner: str, kind: CommandKind) -> None:
    """Raise PermissionDeniedError unless ``issuer`` may send a ``kind`` command to ``owner``'s session."""
    if kind == "cancel":
        raise PermissionDeniedError("a cancel is issued by cancelling the command")
    if issuer.kind is IssuerKind.SYSTEM:
        return
    if issuer.kind is IssuerKind.ADMIN:
        if kind not in _ADMIN_KINDS:
            raise PermissionDeniedError(f"an admin may send remediation commands only, not {kind}")
        return
    if issuer.id != owner:
        raise PermissionDeniedError("you may command only your own sessions")


def check_view(issuer: Issuer, owner: str, record: CommandRecord) -> None:
    """Raise PermissionDeniedError unless ``issuer`` may read or cancel ``record`` of ``owner``."""
    if issuer.kind is IssuerKind.SYSTEM:
        return
    if issuer.kind is IssuerKind.ADMIN:
        if record.kind in _ADMIN_KINDS or (record.kind == "cancel" and record.issuer == issuer):
            return
        raise PermissionDeniedError("an admin may read remediation commands only")
    if issuer.id != owner:
        raise PermissionDeniedError("you may read only your own sessions' commands")


def check_session(issuer: Issuer, owner: str) -> None:
    """Raise PermissionDeniedError unless ``issuer`` may address ``owner``'s sessions at all."""
    if issuer.kind is IssuerKind.USER and issuer.id != owner:
        raise PermissionDeniedError("you may command only your own sessions")


def check_desktop(claims: TokenClaims, owner: str) -> None:
    """Raise PermissionDeniedError unless the caller may see and control ``owner``'s desktop."""
    if claims.user_id != owner:
        raise PermissionDeniedError("you may open only your own desktops")
    claims.require("manage")
