"""Where a consumer's progress lives: the last seq of each session it has processed.

A consumer either keeps its own cursor (Recall keeps it in its saved moment state, written with the
index rows, so "what is indexed" has one owner) or lets the fan-out keep one in the user's space:
``StoreCursors`` writes ``stream/<consumer>/<session_id>.json`` = ``{"seq": N}``. Erasing everything
of a user deletes these too; the consumer then resumes with what is committed after it.
"""

from __future__ import annotations

import json
import re
from typing import Protocol

from recall_store.errors import ObjectNotFoundError
from recall_store.naming import validate_key
from recall_store.store import ObjectStore

CURSOR_PREFIX = "stream/"
_CONSUMER_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


def validate_consumer_name(name: str) -> str:
    if not _CONSUMER_NAME_RE.fullmatch(name):
        raise ValueError(f"a consumer name is 1-40 of [a-z0-9-], starting with a letter; got {name!r}")
    return name


class Cursors(Protocol):
    """Durable progress of one consumer: ``load`` what ``save`` last stored (0 for a new session)."""

    async def load(self, user_id: str, session_id: str) -> int: ...

    async def save(self, user_id: str, session_id: str, seq: int) -> None: ...


class StoreCursors:
    """Cursors of one consumer kept in each user's space, one small object per session."""

    def __init__(self, store: ObjectStore, consumer: str) -> None:
        self._store = store
        self._prefix = CURSOR_PREFIX + validate_consumer_name(consumer) + "/"

    def key(self, session_id: str) -> str:
        return validate_key(f"{self._prefix}{session_id}.json")

    async def load(self, user_id: str, session_id: str) -> int:
        try:
            data = await self._store.get(user_id, self.key(session_id))
        except ObjectNotFoundError:
            return 0
        seq = json.loads(data)["seq"]
        if not isinstance(seq, int) or seq < 0:
            raise ValueError(f"corrupt cursor of session {session_id!r}")
        return seq

    async def save(self, user_id: str, session_id: str, seq: int) -> None:
        body = json.dumps({"seq": seq}).encode()
        await self._store.put(user_id, self.key(session_id), body, "application/json")
