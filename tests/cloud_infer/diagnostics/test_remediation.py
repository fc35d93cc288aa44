"""Remediation over the real downlink: a dry run, a fix that runs at once and is verified, a risky one
that waits for a second admin, every step in the audit log; through the HTTP API, as admins use it.

The desktop is a test agent on a real gRPC ingest stream (``tests/cloud_infer/commands/agent.py``): it
reports metrics, receives the notice and the remediation command, and answers with their results.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from cloud_infer.app import build_app
from cloud_infer.auth import issue_token
from cloud_infer.commands import CommandService, CommandSettings
from cloud_infer.config import ServerSettings
from cloud_infer.diagnostics.audit import AuditLog
from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.remediation import RemediationService
from cloud_infer.diagnostics.service import DiagnosticsService, pseudonym_key
from cloud_infer.server import create_grpc_server, ingest_service
from cloud_infer.services import Services
from cloud_infer.stream import Fanout, StreamSettings
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.directory import UserDirectory
from recall_store.event_log import EventLog
from tests.cloud_infer.commands.agent import TestAgent
from tests.cloud_infer.diagnostics.test_service import GIB
from tests.cloud_infer.helpers import SECRET, FaultyStore, now_ns, serve_api, wait_for

R = pb.CommandResult


def admin(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, name, ['read', 'admin'])}"}


@dataclass
class Desk:
    agent: TestAgent
    api: httpx.AsyncClient
    diagnostics: DiagnosticsService
    clock_ns: int = 0

    async def report(self, seconds: int, disk_used_percent: float) -> None:
        for _ in range(seconds):
            self.clock_ns += 1_000_000_000
            self.agent.seq += 1
            sample = pb.SystemMetrics(
                cpu_percent=10.0,
                memory_used_bytes=4 * GIB,
                memory_total_bytes=16 * GIB,
                disk_used_percent=disk_used_percent,
            )
            await self.agent.send(
                [pb.Event(seq=self.agent.seq, time_unix_nano=self.clock_ns, metrics=sample)]
            )

    async def incident(self) -> dict[str, Any]:
        await wait_for(lambda: self.diagnostics.incidents(open_only=True))
        (incident,) = (await self.api.get("/v1/ops/incidents", headers=admin("ops-1"))).json()["incidents"]
        return dict(incident)

    async def remediation(self, remediation_id: str, *statuses: str) -> dict[str, Any]:
        async def reached() -> bool:
            got = await self.api.get(f"/v1/ops/remediations/{remediation_id}", headers=admin("ops-1"))
            return bool(got.json()["status"] in statuses)

        await wait_for(reached, 20)
        reply = await self.api.get(f"/v1/ops/remediations/{remediation_id}", headers=admin("ops-1"))
        return dict(reply.json())


@pytest.fixture
async def desk(settings: ServerSettings, store: FaultyStore, user: str, session: str) -> AsyncIterator[Desk]:
    directory = UserDirectory(store)
    stream = Fanout(StreamSettings(cursor_save_interval_s=0), EventLog(store), directory)
    commands = CommandService(store, CommandSettings())
    commands.consume(stream)
    diagnostics = DiagnosticsService(store, DiagnosticsSettings(), pseudonym_key(SECRET))
    diagnostics.consume(stream)
    stream.start()
    remediations = RemediationService(diagnostics, commands, AuditLog(store))
    service = ingest_service(settings, store, directory=directory, stream=stream)
    server, port = await create_grpc_server(settings, service, commands=commands)
    services = Services.create(
        settings, store, commands=commands, diagnostics=diagnostics, remediations=remediations
    )
    agent = TestAgent(f"127.0.0.1:{port}", user, session)
    await agent.connect()
    try:
        async with serve_api(build_app(settings, services)) as api:
            yield Desk(agent, api, diagnostics, now_ns() - 600 * 1_000_000_000)
    finally:
        await agent.close()
        await remediations.close()
        await server.stop(None)
        await stream.close()


async def test_a_full_disk_is_cleared_with_notice_verified_and_audited(desk: Desk) -> None:
    await desk.report(3, 97.0)
    incident = await desk.incident()
    assert incident["rule"] == "disk_full"
    path = f"/v1/ops/incidents/{incident['incident_id']}/remediations"
    dry = await desk.api.post(
        path, json={"action": "free_temp_space", "dry_run": True}, headers=admin("ops-1")
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["status"] == "dry_run" and dry.json()["what"].endswith("on 1 session")
    assert dry.json()["sessions"][0]["reachable"] is True

    asked_ns = time.time_ns()
    started = await desk.api.post(path, json={"action": "free_temp_space"}, headers=admin("ops-1"))
    assert started.status_code == 200 and started.json()["status"] == "running", started.text
    notice = await desk.agent.next_command()
    assert notice.issued_unix_nano >= asked_ns  # the dry run sent nothing
    assert notice.notice.title.startswith("Your administrator will remove temporary files")
    fix = await desk.agent.next_command()
    assert fix.remediation.free_temp_space.older_than_s == 3600 and fix.issuer.id == "ops-1"
    await desk.agent.result(notice.command_id)
    await desk.agent.result(fix.command_id, observed={"freed_bytes": "123456"})
    await desk.report(2, 60.0)  # the disk has room again
    done = await desk.remediation(started.json()["remediation_id"], "done")
    (outcome,) = done["sessions"]
    assert (outcome["status"], outcome["cleared"], outcome["command_id"]) == (
        "succeeded",
        True,
        fix.command_id,
    )

    audit = (await desk.api.get("/v1/ops/audit", headers=admin("ops-1"))).json()
    assert audit["intact"], audit
    mine = [e for e in audit["entries"] if e["result"].get("remediation_id") == done["remediation_id"]]
    assert [e["action"] for e in mine] == [
        "remediation.free_temp_space.requested",
        "remediation.free_temp_space.finished",
    ]
    assert mine[-1]["actor"] == "ops-1" and mine[-1]["reason"].startswith(
        f"incident {incident['incident_id']}"
    )
    assert mine[-1]["result"]["sessions"][0]["cleared"] is True
    assert len(desk.agent.commands) == 2


async def test_a_risky_fix_waits_for_a_second_admin_and_a_failure_is_not_called_cleared(desk: Desk) -> None:
    await desk.report(2, 99.0)
    incident = await desk.incident()
    path = f"/v1/ops/incidents/{incident['incident_id']}/remediations"
    unnamed = await desk.api.post(path, json={"action": "end_process"}, headers=admin("ops-1"))
    assert unnamed.status_code == 400 and "pid" in unnamed.text  # which process?
    body = {"action": "end_process", "pid": 4242, "executable": "dd"}
    asked = await desk.api.post(path, json=body, headers=admin("ops-1"))
    assert asked.json()["status"] == "awaiting_approval", asked.text
    approve = f"/v1/ops/remediations/{asked.json()['remediation_id']}/approve"
    assert (await desk.api.post(approve, headers=admin("ops-1"))).status_code == 403  # not by the requester
    user_token = {"Authorization": f"Bearer {issue_token(SECRET, desk.agent.user, ['read', 'manage'])}"}
    assert (await desk.api.post(approve, headers=user_token)).status_code == 403
    approved_ns = time.time_ns()
    approved = await desk.api.post(approve, headers=admin("ops-2"))
    assert approved.json()["approved_by"] == "ops-2", approved.text
    notice = await desk.agent.next_command()
    assert notice.issued_unix_nano >= approved_ns  # nothing went down before the approval
    kill = await desk.agent.next_command()
    assert (kill.remediation.kill_process.pid, kill.remediation.kill_process.expect_executable) == (
        4242,
        "dd",
    )
    await desk.agent.result(notice.command_id)
    await desk.agent.result(kill.command_id, R.STATUS_FAILED, error="no process 4242")
    done = await desk.remediation(asked.json()["remediation_id"], "done")
    (outcome,) = done["sessions"]
    assert (outcome["status"], outcome["error"], outcome["cleared"]) == ("failed", "no process 4242", None)
    audit = (await desk.api.get("/v1/ops/audit", headers=admin("ops-2"))).json()
    steps = [
        e["action"] for e in audit["entries"] if e["result"].get("remediation_id") == done["remediation_id"]
    ]
    assert steps == [
        "remediation.end_process.requested",
        "remediation.end_process.approved",
        "remediation.end_process.finished",
    ]
