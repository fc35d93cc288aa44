"""Loads and stores each user's PrivacySettings in the user's own space, with an in-memory cache.

The cache is per process: one cloud server process owns ingest and the API, so a PUT is seen by the
next ingested batch. A load racing a PUT never puts the older settings back into the cache.
"""

from __future__ import annotations

from cloud_infer.privacy.protocol import PrivacySettings
from recall_store.errors import ObjectNotFoundError
from recall_store.naming import validate_key
from recall_store.store import ObjectStore

SETTINGS_KEY = validate_key("privacy/settings.json")


class PrivacyService:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._cache: dict[str, PrivacySettings] = {}
        self._puts: dict[str, int] = {}

    async def get(self, user_id: str) -> PrivacySettings:
        """The user's settings; the defaults when none were stored. Raises StoreError."""
        cached = self._cache.get(user_id)
        if cached is not None:
            return cached
        puts = self._puts.get(user_id, 0)
        try:
            data = await self._store.get(user_id, SETTINGS_KEY)
        except ObjectNotFoundError:
            settings = PrivacySettings()
        else:
            settings = PrivacySettings.model_validate_json(data)
        if self._puts.get(user_id, 0) == puts:
            self._cache[user_id] = settings
        return settings

    async def put(self, user_id: str, settings: PrivacySettings) -> None:
        """Durably store the settings; later gets and ingested batches see them. Raises StoreError."""
        # Counted before and after the write: a load overlapping any part of it is not cached.
        self._puts[user_id] = self._puts.get(user_id, 0) + 1
        self._cache.pop(user_id, None)
        try:
            data = settings.model_dump_json().encode()
            await self._store.put(user_id, SETTINGS_KEY, data, "application/json")
        finally:
            self._puts[user_id] += 1
        self._cache[user_id] = settings
