"""Export of one's own history as a zip: events as JSON lines, frame images, moments, settings.

The zip is written to a spooled temporary file in worker threads and then streamed. Memory stays
bounded whatever the history's size: objects are read a few at a time (``read_ahead``), events.jsonl
is written one segment at a time into an open zip entry, and moments one index page at a time.
Only the list of the user's object keys is held whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
import zipfile
from collections.abc import AsyncIterator
from typing import IO, Any

from google.protobuf import json_format

from cloud_infer.recall.index import INDEX_PREFIX
from cloud_infer.recall.service import RecallService
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.event_log import read_ahead

_CHUNK = 256 * 1024
_SPOOL_IN_MEMORY = 8 * 1024 * 1024
_AHEAD = 4  # objects (segments or frames) fetched while the previous one is written
_MOMENTS_PAGE = 1000  # index rows per read


async def export_zip(service: RecallService, user_id: str) -> AsyncIterator[bytes]:
    """Chunks of a zip archive of everything stored for ``user_id`` (the index as moments.jsonl).

    Entries, in order: each stored object other than event segments and the index, under its own
    key; then events.jsonl (one JSON object per event, with its session id); then moments.jsonl.
    """
    store = service.store
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115 - closed in finally
    try:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            keys = [k for k in await store.list_keys(user_id) if not k.startswith(INDEX_PREFIX + "/")]
            objects = read_ahead(store, user_id, (k for k in keys if not k.startswith("events/")), _AHEAD)
            async with contextlib.aclosing(objects):
                async for key, data in objects:
                    await asyncio.to_thread(archive.writestr, key, data)
            segments = read_ahead(store, user_id, (k for k in keys if k.startswith("events/")), _AHEAD)
            async with _entry(archive, "events.jsonl") as out, contextlib.aclosing(segments):
                async for key, data in segments:
                    await asyncio.to_thread(_write_events, out, key.split("/")[1], data)
            pages = service.index.iter_rows(user_id, page=_MOMENTS_PAGE)
            async with _entry(archive, "moments.jsonl") as out, contextlib.aclosing(pages):
                async for rows in pages:
                    await asyncio.to_thread(_write_moments, out, rows)
        spool.seek(0)
        while chunk := await asyncio.to_thread(spool.read, _CHUNK):
            yield chunk
    finally:
        spool.close()


class _JsonLines:
    """A zip entry being written as JSON lines; ``lines`` counts them."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.lines = 0


@contextlib.asynccontextmanager
async def _entry(archive: zipfile.ZipFile, name: str) -> AsyncIterator[_JsonLines]:
    """An entry of ``archive`` open for writing, dated now as ``writestr`` dates its entries.

    An entry with no line holds a single newline, as the joined lines plus ``"\\n"`` did before
    entries were streamed. Zip64 is forced because the size is unknown when the entry starts.
    """
    info = zipfile.ZipInfo(name, date_time=time.localtime(time.time())[:6])
    info.compress_type = archive.compression
    stream = await asyncio.to_thread(archive.open, info, "w", force_zip64=True)
    out = _JsonLines(stream)
    try:
        yield out
        if not out.lines:
            await asyncio.to_thread(stream.write, b"\n")
    finally:
        await asyncio.to_thread(stream.close)


def _write_events(out: _JsonLines, session_id: str, data: bytes) -> None:
    """Append the events of one segment (its bytes as stored) that privacy settings left a kind."""
    _write_lines(
        out,
        [
            json.dumps({"session_id": session_id, **json_format.MessageToDict(event)}, ensure_ascii=False)
            for event in pb.EventBatch.FromString(data).events
            if event.WhichOneof("kind") is not None
        ],
    )


def _write_moments(out: _JsonLines, rows: list[dict[str, Any]]) -> None:
    _write_lines(out, [json.dumps(row, ensure_ascii=False) for row in rows])


def _write_lines(out: _JsonLines, lines: list[str]) -> None:
    # One write per segment or page: each write of a zip entry passes through zlib and the CRC.
    if lines:
        out.stream.write("".join(line + "\n" for line in lines).encode())
        out.lines += len(lines)
