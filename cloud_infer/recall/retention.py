"""The retention job: enforces each user's age and size limits from their privacy settings.

It sweeps every user in the store's user directory (``recall_store.directory``), so a user whose
agent has not connected since a restart is swept too. By size, the oldest history is erased in
steps of a twentieth of its span (at least an hour) until the space fits.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.service import RecallService
from recall_store.directory import UserDirectory

logger = logging.getLogger(__name__)

_MIN_SIZE_STEP = timedelta(hours=1)


class RetentionJob:
    def __init__(
        self, recall: RecallService, privacy: PrivacyService, directory: UserDirectory, interval_s: float
    ) -> None:
        self._recall = recall
        self._privacy = privacy
        self._directory = directory
        self._interval_s = interval_s

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.sweep()

    async def sweep(self) -> int:
        """Enforce every user's limits once; returns objects deleted. A failed user is retried next time."""
        deleted = 0
        try:
            users = await self._directory.users()
        except Exception:
            logger.exception("the user directory cannot be read; retention retries next interval")
            return 0
        for user_id in users:
            try:
                deleted += await self.enforce(user_id)
            except Exception:
                logger.exception("retention sweep failed for a user; retrying next interval")
        return deleted

    async def enforce(self, user_id: str, now: datetime | None = None) -> int:
        """Apply the user's limits now; return the number of objects deleted."""
        settings = await self._privacy.get(user_id)
        now = now or datetime.now(UTC)
        deleted = 0
        if settings.retention_days is not None:
            deleted += (await self._recall.older_than(user_id, settings.retention_days, now)).deleted_objects
        if settings.retention_max_bytes is not None and (oldest := await self._recall.oldest(user_id)):
            cut, step = oldest, max(_MIN_SIZE_STEP, (now - oldest) / 20)
            # Erase [oldest, cut) with cut one step later each time, until the space fits.
            while cut < now and await self._recall.usage(user_id) > settings.retention_max_bytes:
                cut += step
                deleted += (await self._recall.erase_range(user_id, oldest, cut)).deleted_objects
        return deleted
