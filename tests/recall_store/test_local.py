"""What only the embedded local backend does: its file layout, clashes, and disk faults."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from recall_store import (
    InvalidNameError,
    LocalObjectStore,
    StoreUnavailableError,
    user_bucket,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalObjectStore]:
    opened = LocalObjectStore(tmp_path / "store", workers=4)
    yield opened
    await opened.close()


async def test_objects_are_files_under_the_user_directory(store: LocalObjectStore, tmp_path: Path) -> None:
    await store.put("alice", "events/s1/a.pb", b"payload")
    path = tmp_path / "store" / user_bucket("alice") / "events" / "s1" / "a.pb"
    assert path.read_bytes() == b"payload"
    assert os.listdir(path.parent) == ["a.pb"]  # no temp file left behind


async def test_an_object_and_a_prefix_cannot_share_a_name(store: LocalObjectStore) -> None:
    await store.put("alice", "a", b"object")
    with pytest.raises(InvalidNameError, match="clashes"):
        await store.put("alice", "a/b", b"x")
    await store.put("alice", "p/q", b"object")
    with pytest.raises(InvalidNameError, match="clashes"):
        await store.put("alice", "p", b"x")
    assert await store.list_keys("alice") == ["a", "p/q"]
    assert await store.get("alice", "a") == b"object"


async def test_leftover_temp_files_are_not_listed(store: LocalObjectStore, tmp_path: Path) -> None:
    await store.put("alice", "events/a.pb", b"a")
    crashed_put = tmp_path / "store" / user_bucket("alice") / "events" / ".a.pb.tmp"
    crashed_put.write_bytes(b"torn")
    assert await store.list_keys("alice") == ["events/a.pb"]


async def test_disk_full_is_unavailable_and_keeps_the_old_object(
    store: LocalObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.put("alice", "k", b"old")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)  # a fault injected on purpose: no real disk fills up
    with pytest.raises(StoreUnavailableError, match="No space left on device"):
        await store.put("alice", "k", b"new")
    monkeypatch.undo()

    assert await store.get("alice", "k") == b"old"
    assert os.listdir(tmp_path / "store" / user_bucket("alice")) == ["k"]


async def test_unusable_root_is_unavailable_not_a_name_error(tmp_path: Path) -> None:
    root = tmp_path / "not-a-directory"
    root.write_bytes(b"")
    store = LocalObjectStore(root, workers=1)
    try:
        with pytest.raises(StoreUnavailableError, match="local store check failed"):
            await store.check()
        with pytest.raises(StoreUnavailableError, match="local store put failed"):
            await store.put("alice", "k", b"x")
    finally:
        await store.close()


async def test_check_creates_the_root(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "new" / "root", workers=1)
    try:
        await store.check()
    finally:
        await store.close()
    assert (tmp_path / "new" / "root").is_dir()
    assert os.listdir(tmp_path / "new" / "root") == []
