"""Who may sign in to the console, and with which role: an ``IdentityProvider``.

The embedded default is ``LocalUsers``, a JSON file of users with argon2id password hashes
(argon2-cffi) and a role; an OIDC provider can take its place behind the same interface (it would map a
verified ID token's claims to a ``ConsoleUser``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    username: str
    role: Role

    @property
    def may_operate(self) -> bool:
        return self.role in ("operator", "admin")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class IdentityProvider(Protocol):
    def authenticate(self, username: str, password: str) -> ConsoleUser | None:
        """The user, if ``password`` is theirs; None otherwise (never says which part was wrong)."""
        ...


class LocalUsers:
    """Users from ``path``: ``{"users": [{"username", "role", "password_hash"}]}``, read at each sign-in so
    an edited file applies without a restart."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._hasher = PasswordHasher()
        # Verified against when the user is unknown, so an unknown name takes as long as a wrong password.
        self._decoy = self._hasher.hash("not a password of anyone")

    def authenticate(self, username: str, password: str) -> ConsoleUser | None:
        record = self._load().get(username)
        try:
            self._hasher.verify(record["password_hash"] if record else self._decoy, password)
        except (VerificationError, InvalidHashError):
            return None
        role = next((r for r in ROLES if record is not None and record.get("role") == r), None)
        if role is None:
            return None
        return ConsoleUser(username, role)

    def _load(self) -> dict[str, dict[str, str]]:
        users = json.loads(self._path.read_text(encoding="utf-8")).get("users", [])
        return {u["username"]: u for u in users if isinstance(u, dict) and "username" in u}


def add_user(path: Path, username: str, role: Role, password: str) -> None:
    """Add ``username`` to the user store at ``path`` (or replace its role and password); owner-only file."""
    if not _USERNAME.fullmatch(username) or role not in ROLES:
        raise ValueError(f"invalid console user {username!r} or role {role!r}")
    users = json.loads(path.read_text(encoding="utf-8")).get("users", []) if path.exists() else []
    users = [u for u in users if u.get("username") != username]
    users.append({"username": username, "role": role, "password_hash": PasswordHasher().hash(password)})
    path.touch(mode=0o600)
    path.write_text(json.dumps({"users": users}, indent=2) + "\n", encoding="utf-8")
