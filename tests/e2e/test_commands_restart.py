"""Commands pending when the server process is killed are delivered after it restarts.

A real ``shadowdesk server`` over real MinIO: one command is delivered but not answered, another is
queued while the agent is away; then the server is SIGKILLed and started again. The reconnecting
agent gets both (the first a second time: at least once), answers them, and the API shows them done.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from cloud_infer.auth import issue_token
from harness.minio import MinioServer
from harness.processes import TOKEN_SECRET, ServerProcess, minio_store_env
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.commands_agent import TestAgent

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_commands_pending_at_a_crash_are_delivered_after_the_restart(
    minio_server: MinioServer, tmp_path: Path
) -> None:
    user, session = f"dana-{uuid.uuid4().hex[:8]}", "dana-desk-1"
    server = ServerProcess(
        minio_store_env(minio_server.endpoint, minio_server.access_key, minio_server.secret_key),
        tmp_path / "server.log",
        recall_enabled="false",
    )
    auth = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, user, ['read', 'manage'])}"}
    url = f"/v1/sessions/{session}/commands"
    server.start()
    agent = TestAgent(server.grpc_address, user, session, token_secret=TOKEN_SECRET)
    try:
        async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as api:
            await agent.connect()
            first = await api.post(url, json={"workflow_step": {"take_frame": {}}}, headers=auth)
            assert first.status_code == 200, first.text
            assert (await agent.next_command()).command_id == first.json()["command_id"]
            await agent.close()  # delivered, never answered
            second = await api.post(url, json={"notice": {"title": "Backup", "body": "done"}}, headers=auth)
            assert second.json()["status"] == "queued"

            server.kill()
            server.start()

            await agent.connect()
            got = [await agent.next_command(), await agent.next_command()]
            assert [c.command_id for c in got] == [first.json()["command_id"], second.json()["command_id"]]
            for command in got:
                await agent.result(command.command_id)
            for command in got:
                done = await _wait_done(api, f"{url}/{command.command_id}", auth)
                assert (done["status"], done["decided_by"]) == ("succeeded", "agent")
            assert got[0].workflow_step.HasField("take_frame")
            assert got[1].notice == pb.Notice(title="Backup", body="done")
    finally:
        await agent.close()
        server.terminate()


async def _wait_done(api: httpx.AsyncClient, url: str, auth: dict[str, str]) -> dict[str, object]:
    for _ in range(100):
        record: dict[str, object] = (await api.get(url, headers=auth)).json()
        if record["status"] not in ("queued", "delivered", "running"):
            return record
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not finish: {record}")
