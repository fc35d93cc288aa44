"""Which desktops a user has, whether a caller may open one, and the connection to its VNC server.

The endpoints come from ``DesktopSettings.endpoints`` (the platform's word, keyed by owner and
session); who may open one is decided by ``cloud_infer.commands.policy.check_desktop``. A refusal says
which of three things went wrong: the session is another user's (permission denied), the caller's
session has no desktop registered, or there is no such session of theirs (both not found).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from cloud_infer.auth import TokenClaims
from cloud_infer.commands import policy
from cloud_infer.desktop.config import DesktopSettings, parse_endpoint
from cloud_infer.errors import BackendUnavailableError, NotFoundError

# The caller's known session ids (``CommandService.sessions``): to tell "no desktop" from "no session".
KnownSessions = Callable[[str], Awaitable[list[str]]]


@dataclass(frozen=True, slots=True)
class Desktop:
    owner: str
    session_id: str
    endpoint: tuple[str, int] | Path


class DesktopService:
    def __init__(self, settings: DesktopSettings, known_sessions: KnownSessions) -> None:
        self.settings = settings
        self._known_sessions = known_sessions
        self._desktops: dict[tuple[str, str], Desktop] = {}
        for key, endpoint in settings.endpoints.items():
            owner, _, session_id = key.partition("/")
            self._desktops[owner, session_id] = Desktop(owner, session_id, parse_endpoint(endpoint))

    def sessions(self, user_id: str) -> list[str]:
        """The ids of ``user_id``'s sessions that have a desktop, sorted."""
        return sorted(session_id for owner, session_id in self._desktops if owner == user_id)

    async def resolve(self, claims: TokenClaims, session_id: str) -> Desktop:
        """The desktop of the caller's ``session_id``; PermissionDeniedError or NotFoundError if none."""
        own = self._desktops.get((claims.user_id, session_id))
        if own is not None:
            policy.check_desktop(claims, own.owner)
            return own
        others = [owner for owner, sid in self._desktops if sid == session_id]
        if others:
            policy.check_desktop(claims, others[0])  # raises: not the caller's
        if session_id in await self._known_sessions(claims.user_id):
            raise NotFoundError(f"session {session_id!r} has no desktop to show")
        raise NotFoundError(f"you have no session {session_id!r}")

    async def connect(self, desktop: Desktop) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the desktop's VNC server within ``connect_timeout_s``;
        BackendUnavailableError if it cannot be reached."""
        try:
            async with asyncio.timeout(self.settings.connect_timeout_s):
                if isinstance(desktop.endpoint, Path):
                    return await asyncio.open_unix_connection(desktop.endpoint)
                host, port = desktop.endpoint
                return await asyncio.open_connection(host, port)
        except (OSError, TimeoutError):
            unreachable = f"the desktop of session {desktop.session_id!r} is not reachable"
            raise BackendUnavailableError(unreachable) from None
