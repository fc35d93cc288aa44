"""A dead or hung MinIO gives StoreUnavailableError within the deadline, and the store recovers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from minio import Minio

from harness.minio import MinioServer, free_port
from recall_store import MinioObjectStore, StoreSettings, StoreUnavailableError, user_bucket

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

_T = TypeVar("_T")
TIMEOUT_S = 2.0
MARGIN_S = 1.5


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MinioServer]:
    """A MinIO of this test's own, so stopping it disturbs no other test."""
    with MinioServer(tmp_path / "data") as own:
        yield own


@pytest.fixture
async def store(server: MinioServer) -> AsyncIterator[MinioObjectStore]:
    opened = MinioObjectStore(server.settings(timeout_s=TIMEOUT_S, connect_timeout_s=1.0))
    yield opened
    await opened.close()


def operations(store: MinioObjectStore, user: str) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "check": store.check,
        "put": lambda: store.put(user, "events/s1/b.pb", b"b"),
        "get": lambda: store.get(user, "events/s1/a.pb"),
        "list": lambda: store.list_keys(user, prefix="events/"),
        "delete": lambda: store.delete(user, ["events/s1/other.pb"]),
    }


async def assert_unavailable_within(call: Callable[[], Awaitable[object]], limit_s: float) -> float:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        result = await call()
        pytest.fail(f"returned {result!r} instead of failing")
    elapsed = time.monotonic() - started
    assert elapsed < limit_s
    return elapsed


async def eventually(call: Callable[[], Awaitable[_T]], within_s: float = 30.0) -> _T:
    """The result of ``call`` once it stops being unavailable: healthy calls may still time out on a
    loaded machine with this short deadline, and that is not what these tests are about."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await call()
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def test_dead_minio_fails_fast_then_recovers(server: MinioServer, store: MinioObjectStore) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    await eventually(lambda: store.put(user, "events/s1/a.pb", b"a"))
    server.stop()

    for name, call in operations(store, user).items():
        elapsed = await assert_unavailable_within(call, TIMEOUT_S + MARGIN_S)
        assert elapsed < TIMEOUT_S, f"{name}: a refused connection should not wait out the deadline"

    server.start()
    await eventually(store.check)
    assert await eventually(lambda: store.get(user, "events/s1/a.pb")) == b"a"
    await eventually(lambda: store.put(user, "events/s1/b.pb", b"b"))
    assert await eventually(lambda: store.list_keys(user)) == ["events/s1/a.pb", "events/s1/b.pb"]


async def test_hung_minio_fails_at_the_deadline_then_recovers(
    server: MinioServer, store: MinioObjectStore
) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    await eventually(lambda: store.put(user, "events/s1/a.pb", b"a"))
    server.freeze()
    try:
        for name, call in operations(store, user).items():
            elapsed = await assert_unavailable_within(call, TIMEOUT_S + MARGIN_S)
            assert elapsed >= TIMEOUT_S * 0.9, f"{name}: failed before its deadline"
    finally:
        server.thaw()

    # The frozen requests may still run once it thaws (a timed-out call can take effect late),
    # which is why every ObjectStore call is idempotent.
    await eventually(store.check)
    assert await eventually(lambda: store.get(user, "events/s1/a.pb")) == b"a"
    await eventually(lambda: store.put(user, "events/s1/c.pb", b"c"))
    assert await eventually(lambda: store.get(user, "events/s1/c.pb")) == b"c"


async def test_never_started_minio_fails_fast() -> None:
    settings = StoreSettings(backend="minio", minio_endpoint=f"127.0.0.1:{free_port()}", timeout_s=TIMEOUT_S)
    store = MinioObjectStore(settings)
    try:
        await assert_unavailable_within(store.check, TIMEOUT_S)
    finally:
        await store.close()


async def test_wrong_credentials_are_unavailable_with_the_reason(server: MinioServer) -> None:
    store = MinioObjectStore(server.settings(minio_access_key="nobody", timeout_s=10))
    try:
        with pytest.raises(StoreUnavailableError, match=r"MinIO put failed: InvalidAccessKeyId"):
            await store.put("user-x", "k", b"x")
    finally:
        await store.close()


async def test_bucket_erased_behind_the_store_is_recreated(
    server: MinioServer, store: MinioObjectStore
) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    await eventually(lambda: store.put(user, "events/s1/a.pb", b"a"))

    admin = Minio(server.endpoint, server.access_key, server.secret_key, secure=False)
    bucket = user_bucket(user)
    admin.remove_object(bucket, "events/s1/a.pb")
    admin.remove_bucket(bucket)

    assert await eventually(lambda: store.list_keys(user)) == []
    await eventually(lambda: store.put(user, "events/s1/b.pb", b"b"))
    assert await eventually(lambda: store.list_keys(user)) == ["events/s1/b.pb"]
