"""The downlink's logic without transport: issue, cancel, read, wait for and subscribe to commands.

``issue`` stores the command in its session's durable outbox (``outbox.py``), then wakes the session's
streams, if any are connected here (``registry.py``). Each stream's ``Downlink`` takes every pending
command it has not sent yet (all of them right after a (re)connect), marking it delivered before it is
written, so delivery is at least once; the agent executes a command id at most once. A command stays
pending until the agent's ``CommandResult`` for it is committed: ``on_committed`` is a consumer of the
committed stream (``consume``), with its own durable cursor, so a result stored just before a crash
still completes its command after the restart. A command whose deadline passes before it was
delivered is recorded as expired and never sent; cancelling a command not yet delivered drops it,
cancelling a delivered one sends a ``CancelCommand``.

A command's run-time secret is held here, in memory only, while the command is pending: never in the
outbox, a log or a span. After a restart a command that needs one and was not yet delivered fails.

Who may do what is decided by ``policy.py``; every method takes the ``Issuer`` acting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import metrics, trace

from cloud_infer.commands import policy
from cloud_infer.commands.config import CommandSettings
from cloud_infer.commands.outbox import Outbox, SessionOutbox
from cloud_infer.commands.protocol import check_action, check_request_fields
from cloud_infer.commands.records import (
    RESULT_STATUS,
    Action,
    CommandRecord,
    CommandStatus,
    Issuer,
    action_name,
    command_json,
    kind_of,
    new_command_id,
)
from cloud_infer.commands.registry import Downlink, LiveSessions
from cloud_infer.errors import InvalidMessageError, NotFoundError, RateLimitedError
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.store import ObjectStore

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
meter = metrics.get_meter(__name__)

_NS_PER_S = 1_000_000_000
_SUBSCRIPTION_QUEUE = 256
CONSUMER_NAME = "commands"
_COMMAND_EVENTS = frozenset({"command_started", "command_result"})
NO_RESULT = "no result from the agent long after its deadline"
SECRET_LOST = "its run-time secret was lost when the server restarted; issue the command again"


@dataclass(frozen=True, slots=True)
class SessionRef:
    """A desktop session: its owner and its id (ids are unique per user, not across users)."""

    user_id: str
    session_id: str


class Subscription:
    """Every change of the commands it matches, oldest first; when it falls 256 behind, the oldest go."""

    def __init__(self, user_id: str | None, session_id: str | None) -> None:
        self.user_id = user_id
        self.session_id = session_id
        self.dropped = 0
        self._queue: asyncio.Queue[CommandRecord] = asyncio.Queue(_SUBSCRIPTION_QUEUE)

    def matches(self, record: CommandRecord) -> bool:
        return (self.user_id is None or record.user_id == self.user_id) and (
            self.session_id is None or record.session_id == self.session_id
        )

    def offer(self, record: CommandRecord) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(record)

    async def get(self) -> CommandRecord:
        return await self._queue.get()

    def __aiter__(self) -> AsyncIterator[CommandRecord]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[CommandRecord]:
        while True:
            yield await self._queue.get()


class CommittedStream(Protocol):
    """Where committed events come from (``cloud_infer.stream.fanout.Fanout``)."""

    def register(
        self, name: str, handler: Callable[[str, str, Sequence[pb.Event]], Awaitable[None]]
    ) -> None: ...


class CommandService:
    def __init__(
        self,
        store: ObjectStore,
        settings: CommandSettings | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.settings = settings or CommandSettings()
        self.outbox = Outbox(store, self.settings, clock)
        self.live = LiveSessions()
        self._clock = clock
        self._secrets: dict[str, str] = {}
        self._subscriptions: set[Subscription] = set()
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._issued = meter.create_counter(
            "shadowdesk.commands.issued", unit="{command}", description="Commands issued, by kind."
        )
        self._finished = meter.create_counter(
            "shadowdesk.commands.finished",
            unit="{command}",
            description="Commands that reached a final status, by status and who decided it.",
        )
        self._deliveries = meter.create_counter(
            "shadowdesk.commands.deliveries", unit="{command}", description="Commands written to a stream."
        )

    # --- the Python API -------------------------------------------------------------------------

    async def issue(
        self,
        session: SessionRef,
        action: Action,
        *,
        issuer: Issuer,
        deadline_s: float | None = None,
        idempotency_key: str = "",
        secret: str | None = None,
    ) -> CommandRecord:
        """Queue ``action`` for the session; the same ``idempotency_key`` again returns the first command.

        PermissionDeniedError (policy), NotFoundError (no such session of its owner),
        InvalidMessageError (a malformed action or deadline), RateLimitedError (too many pending),
        BackendUnavailableError (the store).
        """
        kind = kind_of(action)
        policy.check_issue(issuer, session.user_id, kind)
        check_action(action, secret)
        deadline_s = self.settings.default_deadline_s if deadline_s is None else deadline_s
        check_request_fields(deadline_s, self.settings.max_deadline_s, idempotency_key)
        now = self._clock()
        command = pb.Command(
            command_id=new_command_id(),
            issuer=issuer.to_pb(),
            deadline_unix_nano=now + int(deadline_s * _NS_PER_S),
            idempotency_key=idempotency_key,
            issued_unix_nano=now,
        )
        getattr(command, kind).CopyFrom(action)
        record = self._record(session, issuer, command, needs_secret=secret is not None)
        with tracer.start_as_current_span("commands.issue") as span:
            span.set_attribute("shadowdesk.session_id", session.session_id)
            span.set_attribute("shadowdesk.command.action", record.action)
            try:
                async with self.outbox.editing(session.user_id, session.session_id) as box:
                    if idempotency_key and (first := box.by_idempotency_key(idempotency_key)):
                        policy.check_view(issuer, session.user_id, first)
                        return first.model_copy(deep=True)
                    if len(box.pending()) >= self.settings.max_pending:
                        raise RateLimitedError(
                            f"session {session.session_id!r} already has {self.settings.max_pending} "
                            "commands waiting for a result",
                            retry_after_s=5.0,
                        )
                    box.add(record)
                    if secret is not None:
                        self._secrets[record.command_id] = secret
            except BaseException:
                self._secrets.pop(record.command_id, None)
                raise
            span.set_attribute("shadowdesk.command.id", record.command_id)
        self._issued.add(1, {"kind": kind})
        self._publish([record])
        self.live.wake(session.user_id, session.session_id)
        return record.model_copy(deep=True)

    async def cancel(self, session: SessionRef, command_id: str, *, issuer: Issuer) -> CommandRecord:
        """Cancel a pending command: dropped if not yet delivered, else a CancelCommand is sent.

        Returns the command's record (unchanged when it had already finished).
        """
        policy.check_session(issuer, session.user_id)
        changed: list[CommandRecord] = []
        async with self.outbox.editing(session.user_id, session.session_id) as box:
            record = self._find(box, command_id)
            policy.check_view(issuer, session.user_id, record)
            changed += self._settle(box)
            if record.pending and record.kind == "cancel":
                raise InvalidMessageError("a cancel cannot itself be cancelled")
            if record.status is CommandStatus.QUEUED:
                self._finish(box, record, CommandStatus.CANCELLED, "cancelled before it was delivered")
                changed.append(record)
            elif record.pending and not record.cancel_requested:
                record.cancel_requested = True
                now = self._clock()
                cancel = pb.Command(
                    command_id=new_command_id(),
                    issuer=issuer.to_pb(),
                    deadline_unix_nano=now + int(self.settings.default_deadline_s * _NS_PER_S),
                    issued_unix_nano=now,
                    cancel=pb.CancelCommand(command_id=record.command_id),
                )
                cancel_record = self._record(session, issuer, cancel, needs_secret=False)
                box.add(cancel_record)
                changed += [record, cancel_record]
            result = record.model_copy(deep=True)
        self._publish(changed)
        self.live.wake(session.user_id, session.session_id)
        return result

    async def sessions(self, user_id: str) -> list[tuple[str, bool]]:
        """The user's known sessions, each with whether an agent of it is connected here now."""
        known = set(await self.outbox.session_ids(user_id)) | set(self.live.sessions(user_id))
        return [(session_id, self.live.connected(user_id, session_id)) for session_id in sorted(known)]

    async def get(self, session: SessionRef, command_id: str, *, issuer: Issuer) -> CommandRecord:
        """The command's record now. NotFoundError if the session or command is unknown."""
        policy.check_session(issuer, session.user_id)
        async with self.outbox.editing(session.user_id, session.session_id) as box:
            record = self._find(box, command_id)
            policy.check_view(issuer, session.user_id, record)
            changed = self._settle(box)
            result = record.model_copy(deep=True)
        self._publish(changed)
        return result

    async def wait(
        self, session: SessionRef, command_id: str, timeout_s: float, *, issuer: Issuer
    ) -> CommandRecord:
        """The command's record once it has finished; TimeoutError if still pending after ``timeout_s``."""
        give_up = time.monotonic() + timeout_s
        while True:
            changed = asyncio.Event()
            self._waiters.setdefault(command_id, set()).add(changed)
            try:
                record = await self.get(session, command_id, issuer=issuer)
                if not record.pending:
                    return record
                remaining = give_up - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"command {command_id} is still {record.status} after {timeout_s:g} s")
                # Wake at the deadline too: a command not delivered by then is expired on the next read.
                until_deadline = (record.deadline_ns - self._clock()) / _NS_PER_S
                nap = min(remaining, until_deadline + 0.01) if until_deadline > 0 else remaining
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(nap, 0.01)):
                        await changed.wait()
            finally:
                waiters = self._waiters.get(command_id)
                if waiters is not None:
                    waiters.discard(changed)
                    if not waiters:
                        del self._waiters[command_id]

    @contextlib.contextmanager
    def subscribe(self, user_id: str | None = None, session_id: str | None = None) -> Iterator[Subscription]:
        """Changes of the user's (or, for internal callers, every user's) commands while the block runs."""
        subscription = Subscription(user_id, session_id)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    # --- the ingest side ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def connect(
        self, user_id: str, session_id: str, capabilities: Sequence[str] = ()
    ) -> AsyncIterator[Downlink]:
        """The downlink of one ingest stream; records the session as known (its owner's token opened it)."""
        await self.outbox.ensure(user_id, session_id)
        downlink = Downlink(user_id, session_id, tuple(capabilities), self._take_due)
        self.live.add(downlink)
        try:
            yield downlink
        finally:
            self.live.remove(downlink)

    def consume(self, stream: CommittedStream) -> None:
        """Complete commands from the results in ``stream`` (register before it starts)."""
        stream.register(CONSUMER_NAME, self.on_committed)

    async def on_committed(self, user_id: str, session_id: str, events: Sequence[pb.Event]) -> None:
        """Record the session's committed CommandStarted/CommandResult events (a consumer of commits).

        Idempotent: a result seen again (a resent batch) changes nothing.
        """
        updates = [e for e in events if e.WhichOneof("kind") in _COMMAND_EVENTS]
        if not updates:
            return
        changed: list[CommandRecord] = []
        try:
            async with self.outbox.editing(user_id, session_id) as box:
                for event in updates:
                    if event.HasField("command_started"):
                        record = box.get(event.command_started.command_id)
                        if record is not None and record.status in (
                            CommandStatus.QUEUED,
                            CommandStatus.DELIVERED,
                        ):
                            record.status = CommandStatus.RUNNING
                            record.started_ns = event.time_unix_nano
                            box.changed = True
                            changed.append(record)
                    elif (finished := self._apply_result(box, event.command_result)) is not None:
                        changed.append(finished)
        except NotFoundError:
            logger.info("command events of session %s, which has no outbox; ignored", session_id)
            return
        self._publish(changed)

    # --- internals ------------------------------------------------------------------------------

    def _record(
        self, session: SessionRef, issuer: Issuer, command: pb.Command, *, needs_secret: bool
    ) -> CommandRecord:
        kind = command.WhichOneof("kind")
        assert kind in ("notice", "workflow_step", "remediation", "cancel", "recording")
        return CommandRecord(
            command_id=command.command_id,
            user_id=session.user_id,
            session_id=session.session_id,
            issuer=issuer,
            kind=kind,
            action=action_name(command),
            command=command_json(command),
            needs_secret=needs_secret,
            idempotency_key=command.idempotency_key,
            issued_ns=command.issued_unix_nano,
            deadline_ns=command.deadline_unix_nano,
            cancels=command.cancel.command_id if kind == "cancel" else "",
        )

    def _find(self, box: SessionOutbox, command_id: str) -> CommandRecord:
        record = box.get(command_id)
        if record is None:
            raise NotFoundError(f"no command {command_id[:64]!r} in this session")
        return record

    async def _take_due(self, downlink: Downlink) -> list[pb.Command]:
        """The session's pending commands ``downlink`` has not sent, marked delivered (durably) first."""
        # create: a stream of the session is open, so it exists even if its outbox was erased meanwhile
        async with self.outbox.editing(downlink.user_id, downlink.session_id, create=True) as box:
            changed = self._settle(box)
            due = [r for r in box.pending() if r.command_id not in downlink.sent]
            now = self._clock()
            for record in due:
                if record.status is CommandStatus.QUEUED:
                    record.status = CommandStatus.DELIVERED
                    record.delivered_ns = now
                    changed.append(record)
                record.deliveries += 1
                box.changed = True
            commands = [r.to_pb(self._secrets.get(r.command_id)) for r in due]
        downlink.sent.update(r.command_id for r in due)
        self._deliveries.add(len(due))
        self._publish(changed)
        return commands

    def _settle(self, box: SessionOutbox) -> list[CommandRecord]:
        """Record what time alone decides: expired deadlines, and secrets a restart lost."""
        now = self._clock()
        grace_ns = int(self.settings.result_grace_s * _NS_PER_S)
        changed: list[CommandRecord] = []
        for record in box.pending():
            if record.status is CommandStatus.QUEUED and now > record.deadline_ns:
                self._finish(box, record, CommandStatus.EXPIRED, "not delivered before its deadline")
            elif (
                record.status is CommandStatus.QUEUED
                and record.needs_secret
                and (record.command_id not in self._secrets)
            ):
                self._finish(box, record, CommandStatus.FAILED, SECRET_LOST)
            elif now > record.deadline_ns + grace_ns:
                self._finish(box, record, CommandStatus.EXPIRED, NO_RESULT)
            else:
                continue
            changed.append(record)
        return changed

    def _finish(self, box: SessionOutbox, record: CommandRecord, status: CommandStatus, error: str) -> None:
        record.status = status
        record.error = error
        record.finished_ns = self._clock()
        record.decided_by = "cloud"
        box.changed = True
        self._secrets.pop(record.command_id, None)
        self._finished.add(1, {"status": status.value, "decided_by": "cloud"})

    def _apply_result(self, box: SessionOutbox, result: pb.CommandResult) -> CommandRecord | None:
        """The record the result finished, or None when it changes nothing."""
        record = box.get(result.command_id)
        if record is None or record.decided_by == "agent":
            return None  # unknown (pruned, or another session's) or already recorded
        status = RESULT_STATUS.get(result.status)
        if status is None:
            return None
        record.status = status
        record.decided_by = "agent"
        record.received_ns = result.received_unix_nano
        record.started_ns = result.started_unix_nano or record.started_ns
        record.finished_ns = result.finished_unix_nano
        record.observed = dict(result.observed)
        record.error = result.error
        record.frame_seq = result.frame_seq
        box.changed = True
        self._secrets.pop(record.command_id, None)
        self._finished.add(1, {"status": status.value, "decided_by": "agent"})
        return record

    def _publish(self, records: Iterable[CommandRecord]) -> None:
        for record in records:
            for subscription in self._subscriptions:
                if subscription.matches(record):
                    subscription.offer(record.model_copy(deep=True))
            for waiter in self._waiters.get(record.command_id, ()):
                waiter.set()
