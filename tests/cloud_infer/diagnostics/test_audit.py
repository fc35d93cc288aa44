"""The audit log's hash chain: appends go on where the store left off; any change or gap is found."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud_infer.diagnostics.audit import GENESIS, AuditLog
from cloud_infer.errors import InvalidMessageError
from recall_store.config import StoreSettings
from recall_store.factory import open_store
from recall_store.naming import SYSTEM_SPACE
from recall_store.store import ObjectStore


@pytest.fixture
async def own_store(tmp_path: Path) -> AsyncIterator[ObjectStore]:
    """A store of its own: tampering with the shared MinIO's operator space would break other tests."""
    store = open_store(StoreSettings(backend="local", local_root=tmp_path / "store"))
    yield store
    await store.close()


async def test_entries_chain_and_a_new_log_goes_on_where_the_store_left_off(own_store: ObjectStore) -> None:
    first = await AuditLog(own_store).append("admin-1", "remediation.free_temp_space.requested", "incident x")
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    again = AuditLog(own_store)  # a restarted server
    second = await again.append(
        "admin-2", "remediation.free_temp_space.approved", "incident x", subjects=["s-1"]
    )
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert await again.verify() == 2
    assert [e.actor for e in await again.entries()] == ["admin-1", "admin-2"]
    assert [e.seq for e in await again.entries(after_seq=1)] == [2]


async def test_an_altered_or_missing_entry_breaks_the_chain(own_store: ObjectStore) -> None:
    log = AuditLog(own_store)
    for index in range(3):
        await log.append("admin-1", "remediation.end_process.requested", f"incident {index}")
    key = "ops/audit/000000000002.json"
    original = await own_store.get(SYSTEM_SPACE, key)
    altered = json.loads(original)
    altered["actor"] = "someone-else"
    await own_store.put(SYSTEM_SPACE, key, json.dumps(altered).encode())
    with pytest.raises(InvalidMessageError, match="entry 2 was altered"):
        await log.verify()
    await own_store.put(SYSTEM_SPACE, key, original)
    assert await log.verify() == 3
    await own_store.delete(SYSTEM_SPACE, [key])
    with pytest.raises(InvalidMessageError, match="missing entry 2"):
        await log.verify()
