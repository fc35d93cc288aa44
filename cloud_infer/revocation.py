"""Token revocation: every token of a user issued before a point in time stops working.

``POST /v1/auth/revoke`` (manage scope) records "revoked before now" for the caller in the store's
system space (``revocations/<user_id>``): a stolen sidebar or agent token dies at once, and the user
signs in again. A token issued within the same second as the revocation is revoked too (``iat`` has
one-second precision). Each process caches the time per user for ``cache_s``, so other server
processes see a revocation within that time; this one sees it at once.
"""

from __future__ import annotations

import time

from cloud_infer.auth import TokenClaims
from cloud_infer.errors import BackendUnavailableError, TokenInvalidError
from recall_store.errors import ObjectNotFoundError, StoreError
from recall_store.naming import SYSTEM_SPACE, validate_key
from recall_store.store import ObjectStore

_MAX_CACHED = 100_000


def _key(user_id: str) -> str:
    return validate_key(f"revocations/{user_id}")


class Revocations:
    def __init__(self, store: ObjectStore, cache_s: float = 10.0) -> None:
        self._store = store
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, float]] = {}  # user -> (revoked before, read at)

    async def check(self, claims: TokenClaims) -> None:
        """Raise TokenInvalidError if the token was revoked; BackendUnavailableError if unknown."""
        if claims.issued_at < await self._revoked_before(claims.user_id):
            raise TokenInvalidError("token has been revoked; sign in again")

    async def revoke(self, user_id: str) -> float:
        """Revoke every token of ``user_id`` issued until now; returns the time recorded."""
        before = float(int(time.time()) + 1)
        try:
            await self._store.put(SYSTEM_SPACE, _key(user_id), str(before).encode(), "text/plain")
        except StoreError as exc:
            raise BackendUnavailableError(f"the revocation could not be stored: {exc}") from exc
        self._cache[user_id] = (before, time.monotonic())
        return before

    async def _revoked_before(self, user_id: str) -> float:
        cached = self._cache.get(user_id)
        if cached is not None and time.monotonic() - cached[1] < self._cache_s:
            return cached[0]
        try:
            before = float((await self._store.get(SYSTEM_SPACE, _key(user_id))).decode())
        except ObjectNotFoundError:
            before = 0.0
        except StoreError as exc:
            raise BackendUnavailableError(f"token revocations unavailable: {exc}") from exc
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[user_id] = (before, time.monotonic())
        return before
