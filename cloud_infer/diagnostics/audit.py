"""The ops audit log: append-only and tamper-evident, in the operator space of the store.

Each entry (who, what, why, evidence, result) is one object ``ops/audit/<seq>.json`` that carries the
SHA-256 of its own content and of the entry before it: changing, removing or reordering any entry
breaks the chain from there on, which ``verify`` reports. Appends are serialised in this process; the
next sequence number and the previous hash are read back from the store at start.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from pydantic import BaseModel, Field

from cloud_infer.errors import InvalidMessageError
from recall_store.naming import SYSTEM_SPACE
from recall_store.store import ObjectStore

_PREFIX = "ops/audit/"
GENESIS = "0" * 64


class AuditEntry(BaseModel):
    seq: int
    at_ns: int
    actor: str = Field(description="Who: the admin's id, or system:<component>.")
    action: str = Field(description="What was done, e.g. remediation.free_temp_space.")
    reason: str = Field(description="Why: the incident it answers, or what asked for it.")
    subjects: list[str] = Field(default_factory=list, description="The sessions acted on (pseudonyms).")
    evidence: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    hash: str = ""

    def digest(self) -> str:
        content = self.model_dump(exclude={"hash"})
        return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _key(seq: int) -> str:
    return f"{_PREFIX}{seq:012d}.json"


class AuditLog:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._lock = asyncio.Lock()
        self._head: tuple[int, str] | None = None  # (last seq, its hash), read at the first append

    async def append(
        self,
        actor: str,
        action: str,
        reason: str,
        *,
        subjects: list[str] | None = None,
        evidence: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
    ) -> AuditEntry:
        async with self._lock:
            last_seq, last_hash = self._head or await self._read_head()
            entry = AuditEntry(
                seq=last_seq + 1,
                at_ns=time.time_ns(),
                actor=actor,
                action=action,
                reason=reason,
                subjects=subjects or [],
                evidence=evidence or {},
                result=result or {},
                prev_hash=last_hash,
            )
            entry.hash = entry.digest()
            await self._store.put(
                SYSTEM_SPACE, _key(entry.seq), entry.model_dump_json().encode(), "application/json"
            )
            self._head = (entry.seq, entry.hash)
            return entry

    async def entries(self, after_seq: int = 0, limit: int = 100) -> list[AuditEntry]:
        """Entries after ``after_seq``, oldest first."""
        keys = await self._store.list_keys(SYSTEM_SPACE, _PREFIX, start_after=_key(after_seq))
        return [await self._load(key) for key in keys[:limit]]

    async def verify(self) -> int:
        """The number of entries, once the whole chain is checked; InvalidMessageError where it breaks."""
        previous, seq = GENESIS, 0
        for key in await self._store.list_keys(SYSTEM_SPACE, _PREFIX):
            entry = await self._load(key)
            seq += 1
            if entry.seq != seq or key != _key(seq):
                raise InvalidMessageError(f"the audit log is missing entry {seq} (found {key})")
            if entry.prev_hash != previous or entry.hash != entry.digest():
                raise InvalidMessageError(f"audit entry {seq} was altered: its hash chain does not hold")
            previous = entry.hash
        return seq

    async def _read_head(self) -> tuple[int, str]:
        keys = await self._store.list_keys(SYSTEM_SPACE, _PREFIX)
        if not keys:
            return 0, GENESIS
        last = await self._load(keys[-1])
        return last.seq, last.hash

    async def _load(self, key: str) -> AuditEntry:
        return AuditEntry.model_validate_json(await self._store.get(SYSTEM_SPACE, key))
