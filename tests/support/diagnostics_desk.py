"""A desk for the remediation tests: a real gRPC ingest server with the commands, diagnostics and
remediation services, its HTTP API, and a test agent on a real stream
(``tests/support/commands_agent.py``) that reports metrics and answers commands."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from cloud_infer.app import build_app
from cloud_infer.auth import issue_token
from cloud_infer.commands import CommandService, CommandSettings
from cloud_infer.config import ServerSettings
from cloud_infer.desktop.config import DesktopSettings
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
from tests.support.cloud import SECRET, FaultyStore, now_ns, serve_api, wait_for
from tests.support.commands_agent import TestAgent

GIB = 1024**3


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


@contextlib.asynccontextmanager
async def open_desk(
    settings: ServerSettings,
    store: FaultyStore,
    user: str,
    session: str,
    diagnostics_settings: DiagnosticsSettings | None = None,
    desktop: DesktopSettings | None = None,
) -> AsyncIterator[Desk]:
    directory = UserDirectory(store)
    stream = Fanout(StreamSettings(cursor_save_interval_s=0), EventLog(store), directory)
    commands = CommandService(store, CommandSettings())
    commands.consume(stream)
    diagnostics = DiagnosticsService(
        store, diagnostics_settings or DiagnosticsSettings(), pseudonym_key(SECRET)
    )
    diagnostics.consume(stream)
    stream.start()
    remediations = RemediationService(diagnostics, commands, AuditLog(store))
    service = ingest_service(settings, store, directory=directory, stream=stream)
    server, port = await create_grpc_server(settings, service, commands=commands)
    services = Services.create(
        settings,
        store,
        commands=commands,
        diagnostics=diagnostics,
        remediations=remediations,
        desktop=desktop,
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
