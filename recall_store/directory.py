"""The directory of users who have a space: one empty object ``users/<user_id>`` in the system space.

Jobs that must visit every user (retention, reconcile) list it, so a user whose agent has not
connected since a restart is still swept. Ingest registers a user on their first stream in each
process; registering again is a cheap no-op after the first time.
"""

from __future__ import annotations

from recall_store.naming import SYSTEM_SPACE, validate_id, validate_key
from recall_store.store import ObjectStore

_PREFIX = "users/"


class UserDirectory:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._registered: set[str] = set()

    async def register(self, user_id: str) -> None:
        """Record that ``user_id`` has a space; raises StoreError when the store fails."""
        if user_id in self._registered:
            return
        validate_id("user id", user_id)
        await self._store.put(SYSTEM_SPACE, validate_key(_PREFIX + user_id), b"", "application/octet-stream")
        self._registered.add(user_id)

    async def users(self) -> list[str]:
        """Every registered user id, sorted."""
        keys = await self._store.list_keys(SYSTEM_SPACE, _PREFIX)
        return [key.removeprefix(_PREFIX) for key in keys]
