"""The one object-store interface every backend implements.

All methods are async and bounded by the backend's deadline; all take the user id first, so no
call can reach another user's space.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class ObjectStore(Protocol):
    async def put(
        self, user_id: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        """Durably store ``data`` at ``key``, replacing any object there; creates the user's space."""

    async def get(self, user_id: str, key: str) -> bytes:
        """Return the object's bytes; raise ObjectNotFoundError if absent."""

    async def list_keys(self, user_id: str, prefix: str = "", start_after: str = "") -> list[str]:
        """Keys under ``prefix`` in ascending byte order, after ``start_after``; [] for unknown users."""

    async def usage(self, user_id: str) -> int:
        """Bytes stored in the user's space (every object, also ones not named by valid keys)."""

    async def delete(self, user_id: str, keys: Iterable[str]) -> None:
        """Delete the keys; missing ones are ignored."""

    async def check(self) -> None:
        """Raise StoreUnavailableError unless the backend answers within its deadline."""

    async def close(self) -> None:
        """Release connections and worker threads."""
