"""The recall index writes its tables in Lance file format 2.1 (random reads of a search's candidates
cost about half of 2.2's, docs/benchmarks.md), on both backends, and its compaction keeps that format."""

from __future__ import annotations

import struct
import uuid

import numpy as np
from minio import Minio

from cloud_infer.recall.embedder import DIMENSIONS
from cloud_infer.recall.index import INDEX_PREFIX, Filters, RecallIndex, row_record
from cloud_infer.recall.moments import IndexRow
from recall_store import open_store
from recall_store.config import StoreSettings
from recall_store.naming import user_bucket

_FOOTER = struct.Struct("<HH4s")  # a Lance file ends with its format's major and minor version, "LANC"


def _row(user: str, n: int) -> IndexRow:
    return IndexRow(
        id=f"{user}-{n}",
        moment_id=f"s1.{n}",
        session_id="s1",
        seq=n,
        time_ms=1_700_000_000_000 + n,
        start_ms=1_700_000_000_000 + n,
        app_id="mousepad",
        title="notes.txt - Mousepad",
        url="",
        source="screen",
        text=f"invoice number {n}",
    )


def _data_file_versions(settings: StoreSettings, user: str) -> list[tuple[int, int]]:
    """(major, minor) of every data file of the user's table, read from each file's last bytes."""
    footers: list[bytes] = []
    if settings.backend == "local":
        data = settings.local_root / user_bucket(user) / INDEX_PREFIX / "rows.lance" / "data"
        footers = [path.read_bytes()[-_FOOTER.size :] for path in data.glob("*.lance")]
    else:
        client = Minio(
            settings.minio_endpoint,
            settings.minio_access_key,
            settings.minio_secret_key.get_secret_value(),
            secure=False,
        )
        bucket, prefix = user_bucket(user), f"{INDEX_PREFIX}/rows.lance/data/"
        for obj in client.list_objects(bucket, prefix=prefix, recursive=True):
            assert obj.object_name is not None and obj.size is not None
            reply = client.get_object(bucket, obj.object_name, offset=obj.size - _FOOTER.size)
            try:
                footers.append(reply.read())
            finally:
                reply.close()
                reply.release_conn()
    versions = []
    for footer in footers:
        major, minor, magic = _FOOTER.unpack(footer)
        assert magic == b"LANC"
        versions.append((major, minor))
    return versions


async def test_a_new_table_is_written_and_compacted_in_file_format_2_1(store_settings: StoreSettings) -> None:
    user = f"user-{uuid.uuid4().hex[:12]}"
    store = open_store(store_settings)
    try:
        await store.put(user, "created", b"")  # ingest makes the user's space before anything is indexed
    finally:
        await store.close()
    index = RecallIndex(store_settings)
    vector = np.zeros(DIMENSIONS, dtype=np.float32)
    try:
        for n in range(3):  # three fragments, which optimize compacts into one
            await index.add(user, [row_record(_row(user, n), vector)])
        assert len(_data_file_versions(store_settings, user)) == 3
        await index.optimize(user, vector_index_min_rows=1_000_000)
        rows = await index.rows(user, Filters())
    finally:
        await index.close()
    assert [row["text"] for row in rows] == [f"invoice number {n}" for n in range(3)]
    versions = _data_file_versions(store_settings, user)
    assert versions and set(versions) == {(2, 1)}, versions
