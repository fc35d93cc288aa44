"""The outbox on a real store: what survives a re-read, what is pruned, and a failed write."""

from __future__ import annotations

import pytest

from cloud_infer.commands import CommandService, CommandSettings, CommandStatus, Issuer, SessionRef
from cloud_infer.commands.outbox import Outbox, outbox_key
from cloud_infer.errors import BackendUnavailableError, NotFoundError
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.cloud import FaultyStore

SYSTEM = Issuer.system("tests")
NOTICE = pb.Notice(title="hello")


async def test_only_known_sessions_have_an_outbox(store: FaultyStore, user: str, session: str) -> None:
    outbox = Outbox(store, CommandSettings())
    with pytest.raises(NotFoundError):
        async with outbox.editing(user, session):
            pass
    await outbox.ensure(user, session)
    assert await store.list_keys(user, "commands/") == [outbox_key(session)]


async def test_finished_commands_are_pruned_oldest_first(store: FaultyStore, user: str, session: str) -> None:
    service = CommandService(store, CommandSettings(max_history=2))
    ref = SessionRef(user, session)
    await service.outbox.ensure(user, session)
    ids = [(await service.issue(ref, NOTICE, issuer=SYSTEM)).command_id for _ in range(4)]
    for command_id in ids[:3]:
        await service.cancel(ref, command_id, issuer=SYSTEM)
    # A fresh service reads what was stored: the pending one and the two newest finished ones.
    reread = CommandService(store, CommandSettings(max_history=2))
    assert (await reread.get(ref, ids[3], issuer=SYSTEM)).status is CommandStatus.QUEUED
    assert (await reread.get(ref, ids[2], issuer=SYSTEM)).status is CommandStatus.CANCELLED
    assert (await reread.get(ref, ids[1], issuer=SYSTEM)).status is CommandStatus.CANCELLED
    with pytest.raises(NotFoundError):
        await reread.get(ref, ids[0], issuer=SYSTEM)


async def test_a_failed_write_changes_nothing_stored_or_cached(
    store: FaultyStore, user: str, session: str
) -> None:
    service = CommandService(store)
    ref = SessionRef(user, session)
    await service.outbox.ensure(user, session)
    kept = await service.issue(ref, NOTICE, issuer=SYSTEM)
    store.down = True
    with pytest.raises(BackendUnavailableError):
        await service.issue(ref, NOTICE, issuer=SYSTEM)
    store.down = False
    async with service.outbox.editing(user, session) as box:
        assert [r.command_id for r in box.commands] == [kept.command_id]
