"""Signed-in sessions: a random id in an HMAC-signed, httponly, SameSite=Strict cookie.

The session itself (who, which role, until when) stays in this process, so signing out or an expiry
ends it at once even if the cookie is kept; a restart of the console signs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from admin_console.identity import ConsoleUser

COOKIE = "shadowdesk_console"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    session_id: str
    user: ConsoleUser
    expires_at: float


class Sessions:
    def __init__(self, secret: str, ttl_s: int) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()
        self._ttl_s = ttl_s
        self._live: dict[str, ConsoleSession] = {}

    def start(self, user: ConsoleUser) -> tuple[ConsoleSession, str]:
        """A new session for ``user`` and the cookie value that names it."""
        now = time.time()
        self._live = {sid: s for sid, s in self._live.items() if s.expires_at > now}
        session = ConsoleSession(secrets.token_urlsafe(24), user, now + self._ttl_s)
        self._live[session.session_id] = session
        return session, f"{session.session_id}.{self._sign(session.session_id)}"

    def find(self, cookie: str | None) -> ConsoleSession | None:
        """The live session a cookie names, if its signature holds."""
        session_id, _, signature = (cookie or "").partition(".")
        if not session_id or not hmac.compare_digest(signature, self._sign(session_id)):
            return None
        session = self._live.get(session_id)
        if session is None or session.expires_at <= time.time():
            self._live.pop(session_id, None)
            return None
        return session

    def end(self, cookie: str | None) -> None:
        session = self.find(cookie)
        if session is not None:
            self._live.pop(session.session_id, None)

    @property
    def ttl_s(self) -> int:
        return self._ttl_s

    def _sign(self, session_id: str) -> str:
        return hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest()
