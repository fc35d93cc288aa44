"""Crashes during indexing and during erasure leave a consistent space, as ``shadowdesk fsck`` reads it.

The server (real MinIO) is SIGKILLed right after acknowledging frames it has not indexed yet, and
again in the middle of erasing them. After each restart, with no agent reconnecting, the reconcile
job must finish the work: the committed frames become searchable, an interrupted erasure completes,
and ``shadowdesk fsck`` (a separate process reading the store) reports the space clean, with no byte
of the erased text left in any object of the user's bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from minio import Minio

from cloud_infer.auth import issue_token
from harness.minio import MinioServer
from harness.processes import TOKEN_SECRET, ServerProcess, minio_store_env, wait_until
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.naming import user_bucket
from tests.support.cloud import AgentStream
from tests.support.screens import screen

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USER, SESSION = "dora-crash", "dora-desk"
NS = 1_000_000_000


async def _send(address: str, events: list[pb.Event]) -> int:
    agent = AgentStream(address, issue_token(TOKEN_SECRET, USER, "ingest", session_id=SESSION))
    try:
        await agent.open(USER, SESSION)
        return await agent.ack(events)
    finally:
        await agent.close()


def _moment(seq: int, t: int, words: str) -> list[pb.Event]:
    focus = pb.WindowFocus(window_id=seq, app_id="mousepad", wm_class="mousepad", title=f"Notes {seq}")
    frames = [
        pb.ScreenFrame(
            image=screen([f"{words} line {n}", f"{words} total {n * 7}"]),
            mime_type="image/webp",
            width=1024,
            height=640,
            window_id=seq,
        )
        for n in range(3)
    ]
    return [pb.Event(seq=seq, time_unix_nano=t, window_focus=focus)] + [
        pb.Event(seq=seq + 1 + n, time_unix_nano=t + (n + 1) * NS, frame=frame)
        for n, frame in enumerate(frames)
    ]


def _fsck(env: dict[str, str]) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "shadowdesk.cli", "fsck", "--user", USER],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == (0 if _clean(report) else 1), result.stderr[-2000:]
    return report


def _clean(report: dict[str, object]) -> bool:
    counted = ("pending_erasures", "erased_events", "erased_frames", "erased_rows", "erased_states")
    return not any(report[key] for key in counted) and not report["orphan_frames"] and not report["unindexed"]


def _hits(server: ServerProcess, query: str) -> list[str]:
    auth = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, USER, 'read')}"}
    reply = httpx.get(f"{server.http_url}/v1/recall/search", params={"q": query}, headers=auth, timeout=30)
    reply.raise_for_status()
    return ["".join(f["text"] for f in hit["snippet"]) for hit in reply.json()["hits"]]


def test_kills_during_indexing_and_erasure_leave_the_space_consistent(
    minio_server: MinioServer, tmp_path: Path
) -> None:
    env = minio_store_env(minio_server.endpoint, minio_server.access_key, minio_server.secret_key)
    server = ServerProcess(env, tmp_path / "server.log", llm_backend="none")
    t0 = time.time_ns() - 3600 * NS
    server.start(timeout_s=60)
    try:
        # 1. Killed right after the ack: the frames are committed but not yet indexed.
        assert asyncio.run(_send(server.grpc_address, _moment(1, t0, "Walrus"))) == 4
        server.kill()
        server.start(timeout_s=60)
        # Polled at a second, within the search rate a user is allowed (2 a second, sustained).
        wait_until(
            lambda: any("Walrus" in hit for hit in _hits(server, "Walrus")),
            120,
            "the reconcile job's catch-up",
            interval_s=1.0,
        )

        # 2. Killed in the middle of erasing them (a few delays; whatever was recorded must finish).
        assert asyncio.run(_send(server.grpc_address, _moment(10, t0 + 300 * NS, "Pelican"))) == 13
        wait_until(
            lambda: any("Pelican" in hit for hit in _hits(server, "Pelican")),
            120,
            "Pelican indexed",
            interval_s=1.0,
        )
        body = {"start": _iso(t0 - NS), "end": _iso(t0 + 400 * NS)}
        auth = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, USER, ['read', 'manage'])}"}
        with httpx.Client(base_url=server.http_url, headers=auth, timeout=30) as client:
            request = client.build_request("POST", "/v1/recall/erase", json=body, timeout=0.3)
            with contextlib.suppress(httpx.TimeoutException):
                client.send(request)  # the erasure is under way when this gives up: kill it there
        server.kill()
        server.start(timeout_s=60)
        wait_until(lambda: _clean(_fsck(env)) or not _tombstoned(minio_server), 120, "the erasure finished")
        # The client never got its answer, so it asks again; erasure is idempotent.
        with httpx.Client(base_url=server.http_url, headers=auth, timeout=60) as client:
            assert client.post("/v1/recall/erase", json=body).status_code == 200
    finally:
        server.terminate()
    report = _fsck(env)
    assert _clean(report) and report["user_id"] == USER, report
    for name, data in _objects(minio_server).items():
        assert b"Walrus" not in data and b"Pelican" not in data, name


def _iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns / NS)) + f".{ns % NS // 1000:06d}Z"


def _client(minio: MinioServer) -> Minio:
    return Minio(minio.endpoint, access_key=minio.access_key, secret_key=minio.secret_key, secure=False)


def _tombstoned(minio: MinioServer) -> bool:
    names = [o.object_name for o in _client(minio).list_objects(user_bucket(USER), prefix="erasure/")]
    return bool(names)


def _objects(minio: MinioServer) -> dict[str, bytes]:
    client, bucket = _client(minio), user_bucket(USER)
    names = [o.object_name for o in client.list_objects(bucket, recursive=True) if o.object_name]
    return {name: client.get_object(bucket, name).read() for name in names}
