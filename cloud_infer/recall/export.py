"""Export of one's own history as a zip: events as JSON lines, frame images, moments, settings.

The zip is written to a spooled temporary file in a worker thread and then streamed, so a large
history never sits in memory whole.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import zipfile
from collections.abc import AsyncIterator

from google.protobuf import json_format

from cloud_infer.recall.index import INDEX_PREFIX, Filters
from cloud_infer.recall.service import RecallService
from protos.shadowdesk.v1 import ingest_pb2 as pb

_CHUNK = 256 * 1024
_SPOOL_IN_MEMORY = 8 * 1024 * 1024


async def export_zip(service: RecallService, user_id: str) -> AsyncIterator[bytes]:
    """Chunks of a zip archive of everything stored for ``user_id`` (the index as moments.jsonl)."""
    store = service.store
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115 - closed in finally
    try:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            events: list[str] = []
            for key in await store.list_keys(user_id):
                if key.startswith(INDEX_PREFIX + "/"):
                    continue
                data = await store.get(user_id, key)
                if key.startswith("events/"):
                    batch = pb.EventBatch.FromString(data)
                    session_id = key.split("/")[1]
                    for event in batch.events:
                        if event.WhichOneof("kind") is not None:
                            record = json_format.MessageToDict(event)
                            events.append(
                                json.dumps({"session_id": session_id, **record}, ensure_ascii=False)
                            )
                else:
                    await asyncio.to_thread(archive.writestr, key, data)
            await asyncio.to_thread(archive.writestr, "events.jsonl", "\n".join(events) + "\n")
            rows = await service.index.rows(user_id, Filters(), limit=10_000_000)
            moments = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
            await asyncio.to_thread(archive.writestr, "moments.jsonl", moments + "\n")
        spool.seek(0)
        while chunk := await asyncio.to_thread(spool.read, _CHUNK):
            yield chunk
    finally:
        spool.close()
