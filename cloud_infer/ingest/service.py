"""Ingest logic without transport: sessions, high-water marks, deduplication, durable append.

Every session has a high-water mark (hwm): the highest seq durably stored. It is recovered from the
event log when a stream opens a session no other stream holds (so also after a restart), and events
at or below it are dropped, which makes a resent batch idempotent. One asyncio.Lock per session
serializes a reconnecting agent's old and new streams. A batch is acknowledged only after EventLog
has committed it; then the committed (redacted) batch is published to the stream's consumers
(``cloud_infer.stream``) without waiting for any of them, so no consumer can slow an ack.

Before a batch is stored it waits for the user's ingest rate and is checked against their storage
quota (``cloud_infer.tenancy.ingest_budget``), privacy settings redact it, and whatever the user has
erased is dropped while the user's tombstone gate is held (``recall_store.tombstones``), so a replayed
spool cannot bring erased history back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from opentelemetry import propagate, trace

from cloud_infer.auth import TokenClaims
from cloud_infer.errors import BackendUnavailableError, InvalidMessageError, PermissionDeniedError
from cloud_infer.ingest.metrics import IngestMetrics
from cloud_infer.ingest.protocol import IngestLimits, validate_batch, validate_hello
from cloud_infer.privacy.filter import PrivacyFilter
from cloud_infer.stream.fanout import Fanout
from cloud_infer.tenancy.ingest_budget import IngestBudget
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.directory import UserDirectory
from recall_store.errors import InvalidNameError, StoreError
from recall_store.event_log import EventLog
from recall_store.tombstones import Tombstones, redact_erased

tracer = trace.get_tracer(__name__)


@dataclass
class _SessionState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # None until read from the log, and again after a failed write whose outcome is unknown.
    hwm: int | None = None
    streams: int = 0


class IngestSession:
    """One stream's view of a session, valid inside ``IngestService.open_session``."""

    def __init__(self, service: IngestService, user_id: str, session_id: str, state: _SessionState) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self._service = service
        self._state = state

    async def acked_seq(self) -> int:
        """Highest seq durably stored for this session (what Welcome carries)."""
        async with self._state.lock:
            return await self._recover_hwm()

    async def ingest(self, batch: pb.EventBatch) -> int:
        """Validate, deduplicate and durably store the batch; return the seq to acknowledge."""
        service = self._service
        parent = propagate.extract(dict(batch.trace_context))
        with tracer.start_as_current_span("ingest.batch", context=parent) as span:
            span.set_attribute("shadowdesk.session_id", self.session_id)
            span.set_attribute("shadowdesk.events", len(batch.events))
            validate_batch(batch, service.limits, service.clock())
            async with self._state.lock:
                hwm = await self._recover_hwm()
                # Seqs strictly increase within a batch (validated), so only a resent batch is sliced.
                fresh = (
                    batch.events if batch.events[0].seq > hwm else [e for e in batch.events if e.seq > hwm]
                )
                if duplicates := len(batch.events) - len(fresh):
                    service.metrics.duplicates.add(duplicates)
                    span.set_attribute("shadowdesk.duplicates", duplicates)
                if fresh:
                    size = batch.ByteSize()
                    try:
                        frames = sum(1 for e in fresh if e.HasField("frame"))
                        await service.budget.admit(self.user_id, len(fresh), frames, size)
                    except StoreError as exc:  # measuring the user's storage failed
                        raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc
                    stored = await self._store(fresh, resumed=hwm > 0)
                    service.budget.stored(self.user_id, size)
                    if service.stream is not None:
                        # Never awaited: each consumer takes the batch at its own pace, or reads it
                        # back from the log later; the ack does not wait for any of them.
                        service.stream.publish(self.user_id, self.session_id, stored, hwm, size)
                    hwm = self._state.hwm = fresh[-1].seq
                    service.metrics.events.add(len(fresh))
                    service.metrics.bytes.add(size)
                service.metrics.batches.add(1)
                return hwm

    async def _store(self, fresh: Sequence[pb.Event], resumed: bool) -> list[pb.Event]:
        """Redact and durably append ``fresh``; returns what was stored (redacted events keep their seq)."""
        service = self._service
        privacy = service.privacy
        redacted = await privacy.redact(self.user_id, self.session_id, fresh, resumed) if privacy else fresh
        try:
            async with service.tombstones.writing(self.user_id) as dead:
                stored = redact_erased(self.session_id, redacted, dead)
                await self._append(stored)
        except StoreError as exc:  # reading the tombstones failed
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc
        return stored

    async def _recover_hwm(self) -> int:
        if self._state.hwm is None:
            try:
                self._state.hwm = await self._service.event_log.last_seq(self.user_id, self.session_id)
            except StoreError as exc:
                raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc
        return self._state.hwm

    async def _append(self, events: Sequence[pb.Event]) -> None:
        started = time.perf_counter()
        try:
            await self._service.event_log.append(self.user_id, self.session_id, events)
        except InvalidNameError as exc:
            raise InvalidMessageError(str(exc)) from exc
        except StoreError as exc:
            self._state.hwm = None  # the segment may or may not exist now; re-read before the next batch
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc
        self._service.metrics.store_write_duration.record(time.perf_counter() - started)


class IngestService:
    def __init__(
        self,
        event_log: EventLog,
        limits: IngestLimits,
        budget: IngestBudget,
        tombstones: Tombstones,
        directory: UserDirectory,
        clock: Callable[[], int] = time.time_ns,
        privacy: PrivacyFilter | None = None,
        stream: Fanout | None = None,
    ) -> None:
        self.event_log = event_log
        self.limits = limits
        self.budget = budget
        self.tombstones = tombstones
        self.directory = directory
        self.clock = clock
        self.privacy = privacy
        self.stream = stream
        self.metrics = IngestMetrics()
        self._sessions: dict[tuple[str, str], _SessionState] = {}

    @asynccontextmanager
    async def open_session(self, claims: TokenClaims, hello: pb.Hello) -> AsyncIterator[IngestSession]:
        """Check the Hello against the token and hold the session's state while the stream lives.

        Raises RateLimitedError when the user has too many streams open, BackendUnavailableError when
        the user cannot be recorded in the directory.
        """
        validate_hello(hello)
        if claims.user_id != hello.user_id or claims.session_id != hello.session_id:
            raise PermissionDeniedError("the token is for another user or session than Hello names")
        async with self.budget.stream(hello.user_id):
            try:
                await self.directory.register(hello.user_id)
            except StoreError as exc:
                raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc
            key = (hello.user_id, hello.session_id)
            state = self._sessions.setdefault(key, _SessionState())
            state.streams += 1
            try:
                yield IngestSession(self, hello.user_id, hello.session_id, state)
            finally:
                state.streams -= 1
                if state.streams == 0:
                    del self._sessions[key]
