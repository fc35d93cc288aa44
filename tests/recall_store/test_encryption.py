"""Encryption at rest: every object of a user bucket is SSE-S3 encrypted by MinIO's KMS, also LanceDB's
index files, and the plaintext appears nowhere on MinIO's drive; without a KMS the store writes nothing."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from minio import Minio

from cloud_infer.recall.embedder import DIMENSIONS
from cloud_infer.recall.index import INDEX_PREFIX, Filters, RecallIndex, row_record
from cloud_infer.recall.moments import IndexRow
from harness.minio import MinioServer
from recall_store import MinioObjectStore, StoreUnavailableError, user_bucket

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SSE_HEADER = "X-Amz-Server-Side-Encryption"
MULTIPART_SIZE = 6 * 1024 * 1024  # over the SDK's 5 MiB part size: uploaded in parts


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """A MinIO of this module's own (with a KMS key), so its whole drive can be searched for plaintext."""
    with MinioServer(tmp_path_factory.mktemp("minio-kms") / "data") as own:
        yield own


@pytest.fixture
async def store(server: MinioServer) -> AsyncIterator[MinioObjectStore]:
    opened = MinioObjectStore(server.settings(timeout_s=30))
    yield opened
    await opened.close()


def admin(server: MinioServer) -> Minio:
    return Minio(server.endpoint, server.access_key, server.secret_key, secure=False)


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def new_canary() -> str:
    # Lower-case letters and digits only, so tokenizing and stemming keep it whole in the text index.
    return f"canary{uuid.uuid4().hex}"


def encryption_of_each_object(server: MinioServer, bucket: str) -> dict[str, str | None]:
    client = admin(server)
    names = [obj.object_name for obj in client.list_objects(bucket, recursive=True) if obj.object_name]
    return {name: (client.stat_object(bucket, name).metadata or {}).get(SSE_HEADER) for name in names}


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``needle`` (the whole drive, MinIO's metadata too)."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # a temp file MinIO removed while we walked
            if needle.encode() in data:
                found.append(path)
    return found


def index_row(user: str, text: str) -> IndexRow:
    return IndexRow(
        id=f"{user}-1",
        moment_id="m1",
        session_id="s1",
        seq=1,
        time_ms=1_700_000_000_000,
        start_ms=1_700_000_000_000,
        app_id="mousepad",
        title="notes.txt - Mousepad",
        url="",
        source="screen",
        text=text,
    )


async def test_every_object_of_a_user_bucket_is_encrypted_and_no_plaintext_is_on_the_drive(
    server: MinioServer, store: MinioObjectStore
) -> None:
    user, canary = new_user(), new_canary()
    await store.put(user, "events/s1/a.pb", f"segment with {canary} inside".encode())
    await store.put(user, "frames/s1/big.png", canary.encode() * (MULTIPART_SIZE // len(canary) + 1))
    await store.put(user, "privacy/settings.json", b'{"paused": false}')
    index = RecallIndex(server.settings(timeout_s=60))
    try:
        # A real LanceDB table in the user's bucket, written through S3 past the store.
        vector = np.zeros(DIMENSIONS, dtype=np.float32)
        await index.add(user, [row_record(index_row(user, f"screen text {canary}"), vector)])
        rows = await index.rows(user, Filters())
    finally:
        await index.close()
    assert [row["text"] for row in rows] == [f"screen text {canary}"]  # and it reads back decrypted
    assert canary.encode() in await store.get(user, "events/s1/a.pb")

    bucket = user_bucket(user)
    config = admin(server).get_bucket_encryption(bucket)
    assert config is not None and config.rule.sse_algorithm == "AES256"
    encryption = encryption_of_each_object(server, bucket)
    assert {"events/s1/a.pb", "frames/s1/big.png", "privacy/settings.json"} <= encryption.keys()
    assert any(name.startswith(f"{INDEX_PREFIX}/") for name in encryption), encryption
    assert {name: sse for name, sse in encryption.items() if sse != "AES256"} == {}
    assert files_containing(server.data_dir, canary) == []


async def test_a_bucket_made_without_encryption_gets_it_before_the_next_write(
    server: MinioServer, store: MinioObjectStore
) -> None:
    user, canary = new_user(), new_canary()
    bucket = user_bucket(user)
    admin(server).make_bucket(bucket)  # as a store without encryption made it
    assert admin(server).get_bucket_encryption(bucket) is None

    await store.put(user, "events/s1/a.pb", canary.encode())

    config = admin(server).get_bucket_encryption(bucket)
    assert config is not None and config.rule.sse_algorithm == "AES256"
    assert encryption_of_each_object(server, bucket) == {"events/s1/a.pb": "AES256"}
    assert files_containing(server.data_dir, canary) == []


async def test_with_encryption_off_the_plaintext_is_on_the_drive(server: MinioServer) -> None:
    """The control: the drive search does find plaintext, so its empty answers above mean something."""
    user, canary = new_user(), new_canary()
    plain = MinioObjectStore(server.settings(minio_encryption=False, timeout_s=30))
    try:
        await plain.put(user, "events/s1/a.pb", f"segment with {canary} inside".encode())
    finally:
        await plain.close()
    assert encryption_of_each_object(server, user_bucket(user)) == {"events/s1/a.pb": None}
    assert files_containing(server.data_dir, canary) != []


async def test_a_minio_without_kms_gets_nothing_written(tmp_path: Path) -> None:
    user, canary = new_user(), new_canary()
    with MinioServer(tmp_path / "data", kms=False) as no_kms:
        store = MinioObjectStore(no_kms.settings(timeout_s=30))
        try:
            for _ in range(2):  # refused again, not remembered as a usable bucket
                with pytest.raises(StoreUnavailableError, match="MINIO_KMS_SECRET_KEY") as refused:
                    await store.put(user, "events/s1/a.pb", canary.encode())
                assert "KES" in str(refused.value)
                assert "KMS is not configured" in str(refused.value)
        finally:
            await store.close()
        assert not admin(no_kms).bucket_exists(user_bucket(user))
        assert files_containing(no_kms.data_dir, canary) == []
