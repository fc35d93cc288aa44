"""The durable per-session outbox: ``commands/<session_id>/outbox.json`` in the session owner's space.

One JSON object per session holds its commands in issue order (pending ones, and finished ones for
``history_s``, at most ``max_history``). Every change is a read-modify-write under the session's lock,
and is durable (``ObjectStore.put``) before anyone is told of it, so commands survive a restart.

The object is created when an agent first opens a stream for the session (``ensure``): a session is
known to the cloud, and can be commanded, only once its owner's ingest token has opened it. Ownership
is the space the object lives in, never something a request says.

This process is the only writer of its sessions' outboxes (as ingest's per-session lock assumes one
process per session); the objects are cached, and re-read after a failed write.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from cloud_infer.commands.config import CommandSettings
from cloud_infer.commands.records import CommandRecord
from cloud_infer.errors import BackendUnavailableError, NotFoundError
from recall_store.errors import ObjectNotFoundError, StoreError
from recall_store.naming import validate_id, validate_key
from recall_store.store import ObjectStore

COMMANDS_PREFIX = "commands/"
_MAX_CACHED = 10_000
_NS_PER_S = 1_000_000_000


def outbox_key(session_id: str) -> str:
    validate_id("session id", session_id)
    return validate_key(f"{COMMANDS_PREFIX}{session_id}/outbox.json")


class _Stored(BaseModel):
    version: int = 0
    session_id: str
    created_ns: int
    commands: list[CommandRecord] = Field(default_factory=list)


class SessionOutbox:
    """A session's commands in issue order; changed only inside ``Outbox.editing``."""

    def __init__(self, stored: _Stored) -> None:
        self._stored = stored
        self._by_id = {record.command_id: record for record in stored.commands}
        self.changed = False

    @property
    def commands(self) -> list[CommandRecord]:
        return self._stored.commands

    def get(self, command_id: str) -> CommandRecord | None:
        return self._by_id.get(command_id)

    def by_idempotency_key(self, key: str) -> CommandRecord | None:
        return next((r for r in self._stored.commands if r.idempotency_key == key), None)

    def pending(self) -> list[CommandRecord]:
        return [record for record in self._stored.commands if record.pending]

    def add(self, record: CommandRecord) -> None:
        self._stored.commands.append(record)
        self._by_id[record.command_id] = record
        self.changed = True

    def prune(self, now_ns: int, history_s: float, max_history: int) -> None:
        """Drop finished commands older than ``history_s`` or beyond the newest ``max_history``."""
        cutoff = now_ns - int(history_s * _NS_PER_S)
        finished = [r for r in self._stored.commands if not r.pending]
        keep = {r.command_id for r in finished if max(r.finished_ns, r.issued_ns) >= cutoff}
        # finished is in issue order: the newest are last
        keep &= {r.command_id for r in finished[len(finished) - max_history :]} if max_history else set()
        dropped = {r.command_id for r in finished} - keep
        if dropped:
            self._stored.commands = [r for r in self._stored.commands if r.command_id not in dropped]
            for command_id in dropped:
                del self._by_id[command_id]
            self.changed = True

    def to_json(self) -> bytes:
        self._stored.version += 1
        return self._stored.model_dump_json().encode()


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    box: SessionOutbox | None = None


class Outbox:
    def __init__(
        self, store: ObjectStore, settings: CommandSettings, clock: Callable[[], int] = time.time_ns
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._slots: OrderedDict[tuple[str, str], _Slot] = OrderedDict()

    async def session_ids(self, user_id: str) -> list[str]:
        """The user's known sessions (an agent of theirs opened each once), sorted."""
        try:
            keys = await self._store.list_keys(user_id, COMMANDS_PREFIX)
        except StoreError as exc:
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc
        suffix = "/outbox.json"
        return sorted(key[len(COMMANDS_PREFIX) : -len(suffix)] for key in keys if key.endswith(suffix))

    async def ensure(self, user_id: str, session_id: str) -> None:
        """Record that the session exists (its agent connected with its owner's token)."""
        async with self.editing(user_id, session_id, create=True):
            pass

    @asynccontextmanager
    async def editing(
        self, user_id: str, session_id: str, *, create: bool = False
    ) -> AsyncIterator[SessionOutbox]:
        """Hold the session's outbox; what the block changes is stored durably when it ends.

        NotFoundError when the session is unknown (and ``create`` is false); BackendUnavailableError
        when the store fails, after which the cached copy is dropped and re-read next time.
        """
        slot = self._slot(user_id, session_id)
        async with slot.lock:
            try:
                if slot.box is None:
                    slot.box = await self._load(user_id, session_id, create)
                box = slot.box
                yield box
                if box.changed:
                    box.prune(self._clock(), self._settings.history_s, self._settings.max_history)
                    data = box.to_json()
                    await self._store.put(user_id, outbox_key(session_id), data, "application/json")
                    box.changed = False
            except StoreError as exc:
                slot.box = None
                raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc
            except BaseException:
                # The block failed part-way: what is cached may differ from what is stored.
                if slot.box is not None and slot.box.changed:
                    slot.box = None
                raise

    async def _load(self, user_id: str, session_id: str, create: bool) -> SessionOutbox:
        try:
            data = await self._store.get(user_id, outbox_key(session_id))
        except ObjectNotFoundError:
            if not create:
                raise NotFoundError(f"no session {session_id!r} of this user has connected") from None
            box = SessionOutbox(_Stored(session_id=session_id, created_ns=self._clock()))
            box.changed = True
            return box
        return SessionOutbox(_Stored.model_validate_json(data))

    def _slot(self, user_id: str, session_id: str) -> _Slot:
        key = (user_id, session_id)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
            # Forget the least recently used idle outboxes; they are re-read when needed.
            while len(self._slots) > _MAX_CACHED:
                oldest_key, oldest = next(iter(self._slots.items()))
                if oldest.lock.locked():
                    break
                del self._slots[oldest_key]
        self._slots.move_to_end(key)
        return slot
