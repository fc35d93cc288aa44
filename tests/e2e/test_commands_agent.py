"""The real agent runs what the real server sends: the downlink end to end, without a desktop.

``shadowdesk server`` over real MinIO and ``shadowdesk agent`` streaming system metrics only: an admin
asks for a diagnostic snapshot and the user sends a notice, over HTTP; the agent's executor runs both
and its results come back through its spool and the acked stream; a remediation the agent's allow-list
does not hold (kill_process is off by default) comes back refused by the agent, though the cloud let
the admin send it.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from cloud_infer.auth import issue_token
from harness.minio import MinioServer
from harness.processes import TOKEN_SECRET, ServerProcess, ShadowdeskProcess, agent_env, minio_store_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PENDING = ("queued", "delivered", "running")
NOTICE = {"notice": {"title": "hello", "body": "from the test"}}


async def _finished(api: httpx.AsyncClient, url: str, auth: dict[str, str]) -> dict[str, object]:
    for _ in range(300):
        record: dict[str, object] = (await api.get(url, headers=auth)).json()
        if record["status"] not in PENDING:
            return record
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not finish: {record}")


async def test_the_real_agent_runs_what_the_server_sends(minio_server: MinioServer, tmp_path: Path) -> None:
    user, session = f"erin-{uuid.uuid4().hex[:8]}", "erin-desk-1"
    server = ServerProcess(
        minio_store_env(minio_server.endpoint, minio_server.access_key, minio_server.secret_key),
        tmp_path / "server.log",
        recall_enabled="false",
    )
    token = issue_token(TOKEN_SECRET, user, "ingest", session_id=session, ttl_s=3600)
    agent = ShadowdeskProcess(
        "agent",
        agent_env(server, token, user, session, tmp_path / "spool.sqlite3", sensors="system_metrics"),
        tmp_path / "agent.log",
    )
    owner = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, user, ['read', 'manage'])}"}
    admin = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, 'ops-1', ['read', 'admin'])}"}
    base = f"/v1/sessions/{session}/commands"
    server.start()
    agent.start()
    try:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as api:
            for _ in range(300):  # until the agent's first stream made the session known
                probe = await api.post(base, json=NOTICE, headers=owner)
                if probe.status_code != 404:
                    break
                await asyncio.sleep(0.1)
            assert probe.status_code == 200, probe.text
            snapshot = await api.post(
                f"{base}?user={user}", json={"remediation": {"diagnostic_snapshot": {}}}, headers=admin
            )
            kill = await api.post(
                f"{base}?user={user}",
                json={"remediation": {"kill_process": {"pid": 1, "expect_executable": "init"}}},
                headers=admin,
            )
            notice = await _finished(api, f"{base}/{probe.json()['command_id']}", owner)
            assert (notice["status"], notice["decided_by"]) == ("succeeded", "agent"), notice
            report = await _finished(api, f"{base}/{snapshot.json()['command_id']}?user={user}", admin)
            assert report["status"] == "succeeded", report
            assert report["observed"], report
            refused = await _finished(api, f"{base}/{kill.json()['command_id']}?user={user}", admin)
            assert (refused["status"], refused["decided_by"]) == ("refused", "agent"), refused
    finally:
        agent.terminate()
        server.terminate()
