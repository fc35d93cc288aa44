"""Crashes on both sides lose nothing and duplicate nothing: every event is stored exactly once.

The agent streams system metrics fast; the test SIGKILLs the server mid-stream, SIGKILLs the agent
while the server is down (so unacknowledged events exist only in its spool), restarts both, and then
reads the whole session back from real MinIO.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from cloud_infer.auth import issue_token
from harness.minio import MinioServer
from harness.processes import (
    TOKEN_SECRET,
    ServerProcess,
    ShadowdeskProcess,
    agent_env,
    minio_store_env,
    wait_until,
)
from recall_store import EventLog, open_store
from session_agent.spool import Spool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USER, SESSION = "carol-crash", "carol-desk-7"
FAR_FUTURE_NS = 2**62


def _stored_seqs(minio_server: MinioServer) -> list[int]:
    async def read() -> list[int]:
        store = open_store(minio_server.settings())
        try:
            events = await EventLog(store).read(USER, 0, FAR_FUTURE_NS)
        finally:
            await store.close()
        return [logged.event.seq for logged in events if logged.session_id == SESSION]

    return asyncio.run(read())


def _spooled_last_seq(spool_path: Path) -> int:
    spool = Spool(spool_path, SESSION, 256 * 1024 * 1024)
    try:
        return spool.last_seq
    finally:
        spool.close()


def test_server_and_agent_crashes_lose_and_duplicate_nothing(
    minio_server: MinioServer, tmp_path: Path
) -> None:
    server = ServerProcess(
        minio_store_env(minio_server.endpoint, minio_server.access_key, minio_server.secret_key),
        tmp_path / "server.log",
    )
    spool_path = tmp_path / "spool.sqlite3"
    token = issue_token(TOKEN_SECRET, user_id=USER, scope="ingest", session_id=SESSION, ttl_s=3600)
    agent = ShadowdeskProcess(
        "agent",
        agent_env(
            server,
            token,
            USER,
            SESSION,
            spool_path,
            sensors="system_metrics",
            metrics_interval_s="0.1",
            flush_interval_s="0.1",
            backoff_initial_s="0.2",
        ),
        tmp_path / "agent.log",
    )
    server.start()
    agent.start()
    try:
        wait_until(
            lambda: len(_stored_seqs(minio_server)) >= 15, 60, f"events in MinIO; agent log:\n{agent.log()}"
        )

        server.kill()
        stored_at_crash = max(_stored_seqs(minio_server))
        wait_until(
            lambda: _spooled_last_seq(spool_path) >= stored_at_crash + 10, 30, "events spooled offline"
        )

        agent.kill()
        spooled_before_agent_crash = _spooled_last_seq(spool_path)
        agent.start()
        wait_until(
            lambda: _spooled_last_seq(spool_path) >= spooled_before_agent_crash + 10,
            30,
            "the restarted agent spooling",
        )

        server.start()
        target = _spooled_last_seq(spool_path)
        wait_until(lambda: max(_stored_seqs(minio_server)) >= target, 60, f"catch-up to seq {target}")
    finally:
        agent.terminate()
        server.terminate()

    seqs = _stored_seqs(minio_server)
    duplicates = [seq for seq, count in Counter(seqs).items() if count > 1]
    assert duplicates == []
    # Contiguous from 1: nothing spooled before either crash was lost.
    assert sorted(seqs) == list(range(1, max(seqs) + 1))
    assert max(seqs) >= target > spooled_before_agent_crash > stored_at_crash
