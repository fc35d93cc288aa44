"""The ObjectStore contract, run against every backend: local (in tmp_path) and a real MinIO."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from recall_store import (
    InvalidNameError,
    ObjectNotFoundError,
    ObjectStore,
    StoreSettings,
    StoreUnavailableError,
    open_store,
)

BAD_KEYS = [
    "",
    "../x",
    "/abs",
    "a/../b",
    "a//b",
    "a/",
    ".hidden",
    "a/./b",
    "a\\b",
    "a b",
    "k\x00",
    "é",
    "x" * 513,
]
BAD_USER_IDS = ["", "../u", "a/b", ".u", "u\n", "x" * 129]


@pytest.fixture
async def store(store_settings: StoreSettings) -> AsyncIterator[ObjectStore]:
    opened = open_store(store_settings)
    yield opened
    await opened.close()


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


async def test_put_get_and_overwrite(store: ObjectStore) -> None:
    user = new_user()
    await store.put(user, "events/s1/a.pb", b"first", "application/x-protobuf")
    assert await store.get(user, "events/s1/a.pb") == b"first"

    await store.put(user, "events/s1/a.pb", b"second")
    assert await store.get(user, "events/s1/a.pb") == b"second"
    assert await store.list_keys(user) == ["events/s1/a.pb"]


async def test_usage_counts_the_bytes_of_a_users_space(store: ObjectStore) -> None:
    user, other = new_user(), new_user()
    assert await store.usage(user) == 0, "an unknown user uses nothing"
    await store.put(user, "frames/s1/a.webp", b"x" * 1000)
    await store.put(user, "events/s1/b.pb", b"y" * 24)
    await store.put(other, "events/s1/b.pb", b"z" * 500)
    assert await store.usage(user) == 1024
    await store.delete(user, ["frames/s1/a.webp"])
    assert await store.usage(user) == 24


async def test_empty_object(store: ObjectStore) -> None:
    user = new_user()
    await store.put(user, "empty", b"")
    assert await store.get(user, "empty") == b""


async def test_list_is_in_byte_order_whatever_the_put_order(store: ObjectStore) -> None:
    user = new_user()
    keys = ["a-b", "a.b", "a/b", "a0", "B", "events/s1/000000000002.pb", "events/s1/000000000010.pb", "z"]
    for key in random.Random(7).sample(keys, len(keys)):
        await store.put(user, key, key.encode())
    assert await store.list_keys(user) == sorted(keys, key=str.encode)


async def test_list_prefix_and_start_after(store: ObjectStore) -> None:
    user = new_user()
    keys = [f"events/s1/{seq:012d}.pb" for seq in (1, 2, 3, 11)] + [
        "events/s10/000000000001.pb",
        "frames/s1/000000000002.webp",
    ]
    await asyncio.gather(*(store.put(user, key, b"x") for key in keys))

    s1 = [f"events/s1/{seq:012d}.pb" for seq in (1, 2, 3, 11)]
    assert await store.list_keys(user, prefix="events/s1/") == s1
    # A prefix is a string prefix, not a directory: "events/s1" also matches "events/s10/...".
    assert await store.list_keys(user, prefix="events/s1") == [*s1, "events/s10/000000000001.pb"]
    assert await store.list_keys(user, prefix="events/s1/00000000000") == s1[:3]
    assert await store.list_keys(user, prefix="nothing/") == []

    assert await store.list_keys(user, prefix="events/s1/", start_after=s1[1]) == s1[2:]
    assert await store.list_keys(user, start_after="events/s10/000000000001.pb") == [
        "frames/s1/000000000002.webp"
    ]
    # start_after need not be an existing key.
    assert await store.list_keys(user, prefix="events/", start_after="events/s1/000000000005") == [
        s1[3],
        "events/s10/000000000001.pb",
    ]
    assert await store.list_keys(user, start_after="zzz") == []


async def test_get_missing_raises_not_found(store: ObjectStore) -> None:
    user = new_user()
    with pytest.raises(ObjectNotFoundError):
        await store.get(user, "never/written")
    await store.put(user, "written", b"x")
    with pytest.raises(ObjectNotFoundError):
        await store.get(user, "never/written")
    with pytest.raises(ObjectNotFoundError):
        await store.get(user, "written/below")


async def test_delete_ignores_missing_keys_and_unknown_users(store: ObjectStore) -> None:
    user = new_user()
    await store.put(user, "k/1", b"1")
    await store.put(user, "k/2", b"2")
    await store.put(user, "k/3", b"3")

    await store.delete(user, ["k/1", "k/3", "k/missing", "other/missing"])
    assert await store.list_keys(user) == ["k/2"]
    with pytest.raises(ObjectNotFoundError):
        await store.get(user, "k/1")

    await store.delete(user, [])
    await store.delete(user, iter(["k/2"]))
    assert await store.list_keys(user) == []
    await store.delete(new_user(), ["k/1"])


async def test_users_are_isolated(store: ObjectStore) -> None:
    alice, bob = new_user(), new_user()
    await store.put(alice, "events/s1/secret.pb", b"alice's")

    assert await store.list_keys(bob) == []
    assert await store.list_keys(bob, prefix="events/") == []
    with pytest.raises(ObjectNotFoundError):
        await store.get(bob, "events/s1/secret.pb")

    await store.put(bob, "events/s1/secret.pb", b"bob's")
    await store.delete(bob, ["events/s1/secret.pb"])
    assert await store.get(alice, "events/s1/secret.pb") == b"alice's"
    assert await store.list_keys(alice) == ["events/s1/secret.pb"]


async def test_unknown_user_lists_nothing(store: ObjectStore) -> None:
    assert await store.list_keys(new_user()) == []
    assert await store.list_keys(new_user(), prefix="events/", start_after="a") == []


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_invalid_keys_are_rejected_and_touch_nothing(
    store: ObjectStore, key: str, tmp_path: Path
) -> None:
    user = new_user()
    await store.put(user, "kept", b"kept")
    before = sorted(tmp_path.rglob("*"))

    with pytest.raises(InvalidNameError):
        await store.put(user, key, b"evil")
    with pytest.raises(InvalidNameError):
        await store.get(user, key)
    with pytest.raises(InvalidNameError):
        await store.delete(user, ["kept", key])
    if key not in ("", "a/"):  # both are valid listing prefixes
        with pytest.raises(InvalidNameError):
            await store.list_keys(user, prefix=key)

    assert await store.list_keys(user) == ["kept"]
    assert await store.get(user, "kept") == b"kept"
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("user_id", BAD_USER_IDS)
async def test_invalid_user_ids_are_rejected(store: ObjectStore, user_id: str) -> None:
    with pytest.raises(InvalidNameError):
        await store.put(user_id, "k", b"x")
    with pytest.raises(InvalidNameError):
        await store.get(user_id, "k")
    with pytest.raises(InvalidNameError):
        await store.list_keys(user_id)
    with pytest.raises(InvalidNameError):
        await store.delete(user_id, ["k"])


async def test_large_object_round_trips(store: ObjectStore) -> None:
    user = new_user()
    data = os.urandom(6 * 1024 * 1024 + 123)  # over MinIO's 5 MiB part size: a multipart upload
    await store.put(user, "frames/s1/000000000001.png", data, "image/png")
    assert await store.get(user, "frames/s1/000000000001.png") == data


async def test_concurrent_puts_all_land(store: ObjectStore) -> None:
    user = new_user()
    payloads = {f"frames/s1/{seq:012d}.webp": os.urandom(2048 + seq) for seq in range(48)}
    await asyncio.gather(*(store.put(user, key, data) for key, data in payloads.items()))

    assert await store.list_keys(user, prefix="frames/") == sorted(payloads)
    got = await asyncio.gather(*(store.get(user, key) for key in payloads))
    assert dict(zip(payloads, got, strict=True)) == payloads


async def test_concurrent_overwrites_leave_one_whole_value(store: ObjectStore) -> None:
    user = new_user()
    values = [bytes([n]) * 65536 for n in range(16)]
    await asyncio.gather(*(store.put(user, "same", value) for value in values))
    assert await store.get(user, "same") in values
    assert await store.list_keys(user) == ["same"]


async def test_first_puts_of_a_new_user_race_safely(store: ObjectStore) -> None:
    # Every put below may be the one that creates the user's space.
    user = new_user()
    await asyncio.gather(*(store.put(user, f"k{n:02d}", b"x") for n in range(16)))
    assert len(await store.list_keys(user)) == 16


async def test_check_passes_on_a_healthy_backend(store: ObjectStore) -> None:
    await store.check()


async def test_closed_store_refuses_calls(store: ObjectStore) -> None:
    await store.close()
    with pytest.raises(StoreUnavailableError, match="closed"):
        await store.put(new_user(), "k", b"x")
