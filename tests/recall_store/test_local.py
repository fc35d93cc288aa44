"""What only the embedded local backend does: its file layout, clashes, and disk faults."""

from __future__ import annotations

import errno
import os
import stat
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


async def test_a_put_makes_private_directories_and_files(store: LocalObjectStore, tmp_path: Path) -> None:
    previous = os.umask(0o002)  # a permissive umask must not loosen what the store creates
    try:
        await store.put("alice", "events/s1/a.pb", b"payload")
    finally:
        os.umask(previous)
    root = tmp_path / "store"
    modes = {}
    for dirpath, _dirs, files in os.walk(root):
        modes[dirpath] = stat.S_IMODE(os.stat(dirpath).st_mode)
        for name in files:
            modes[f"{dirpath}/{name}"] = stat.S_IMODE(os.stat(f"{dirpath}/{name}").st_mode)
    object_path = str(root / user_bucket("alice") / "events" / "s1" / "a.pb")
    assert modes.pop(object_path) == 0o600
    assert len(modes) == 4  # the root, the user's directory, events/ and events/s1/
    assert set(modes.values()) == {0o700}, {path: oct(mode) for path, mode in modes.items()}
