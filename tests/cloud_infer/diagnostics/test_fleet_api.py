"""The fleet API by ops role, over a real gRPC ingest stream and the committed stream: sessions with their
health and numbers, chart series, incident search and "has this happened before?", the audited reveal,
what each role may do, and the console's token exchange.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from cloud_infer.auth import Scope, issue_token
from cloud_infer.config import ServerSettings
from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.fleet import matches, similar
from cloud_infer.diagnostics.incidents import Incident
from cloud_infer.diagnostics.rules import Rule, Severity
from cloud_infer.diagnostics.service import DiagnosticsService, pseudonym, pseudonym_key
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.cloud import SECRET, FaultyStore, wait_for
from tests.support.commands_agent import TestAgent
from tests.support.diagnostics_desk import GIB, open_desk

NS = 1_000_000_000


def auth(name: str, *scopes: Scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, name, ['read', *scopes])}"}


VIEWER, OPERATOR = auth("view-1", "ops_view"), auth("op-1", "ops_operate")
ADMIN, ADMIN_2 = auth("ops-1", "admin"), auth("ops-2", "admin")


@dataclass
class Fleet:
    agent: TestAgent
    api: httpx.AsyncClient
    diagnostics: DiagnosticsService
    clock_ns: int

    @property
    def subject(self) -> str:
        return pseudonym(pseudonym_key(SECRET), self.agent.user, self.agent.session)

    async def report(self, seconds: int, disk_used_percent: float) -> None:
        for _ in range(seconds):
            self.clock_ns += NS
            self.agent.seq += 1
            sample = pb.SystemMetrics(
                cpu_percent=12.5,
                memory_used_bytes=4 * GIB,
                memory_total_bytes=16 * GIB,
                disk_used_percent=disk_used_percent,
                load_1m=0.5,
            )
            await self.agent.send(
                [pb.Event(seq=self.agent.seq, time_unix_nano=self.clock_ns, metrics=sample)]
            )

        def judged() -> bool:  # the committed stream delivered the newest sample to diagnostics
            series = self.diagnostics.series(self.subject)
            newest = series.newest if series is not None else None
            return newest is not None and abs(newest.t * NS - self.clock_ns) < 1000

        await wait_for(judged)

    async def get(self, path: str, headers: dict[str, str] = VIEWER, **params: Any) -> Any:
        reply = await self.api.get(path, headers=headers, params=params)
        assert reply.status_code == 200, reply.text
        return reply.json()

    async def open_incident(self) -> dict[str, Any]:
        await self.report(2, 97.0)
        await wait_for(lambda: self.diagnostics.incidents(open_only=True))
        (incident,) = (await self.get("/v1/ops/incidents"))["incidents"]
        return dict(incident)


@pytest.fixture
async def fleet(
    settings: ServerSettings, store: FaultyStore, user: str, session: str
) -> AsyncIterator[Fleet]:
    # A part clears after 2 s without its finding, so a test sees an incident resolve and a second open.
    async with open_desk(settings, store, user, session, DiagnosticsSettings(clear_after_s=2)) as desk:
        yield Fleet(desk.agent, desk.api, desk.diagnostics, desk.clock_ns)


async def test_sessions_show_health_numbers_and_series_by_pseudonym_to_every_ops_role(fleet: Fleet) -> None:
    await fleet.report(3, 40.0)
    await wait_for(lambda: fleet.diagnostics.sessions())
    (calm,) = (await fleet.get("/v1/ops/sessions"))["sessions"]
    assert (calm["subject"], calm["health"], calm["open_incidents"]) == (fleet.subject, "ok", [])
    assert abs(calm["last_sample_ns"] - fleet.clock_ns) < 1000  # through float seconds
    # Every numeric field of the newest sample (newer sensors' too), numbers only.
    assert {
        "cpu_percent": 12.5,
        "memory_percent": 25.0,
        "disk_used_percent": 40.0,
        "load_1m": 0.5,
    }.items() <= (calm["metrics"].items())
    assert all(isinstance(v, float) for v in calm["metrics"].values()), calm

    incident = await fleet.open_incident()
    for headers in (VIEWER, OPERATOR, ADMIN):
        (hit,) = (await fleet.get("/v1/ops/sessions", headers))["sessions"]
        assert (hit["health"], hit["open_incidents"]) == ("critical", [incident["incident_id"]])
    series = await fleet.get(f"/v1/ops/sessions/{fleet.subject}/series", seconds=3)
    assert series["t"] == [(fleet.clock_ns - n * NS) / NS for n in (3, 2, 1, 0)]
    assert series["metrics"]["disk_used_percent"] == [40.0, 40.0, 97.0, 97.0]
    everything = json.dumps([await fleet.get("/v1/ops/sessions"), series])
    assert fleet.agent.user not in everything and fleet.agent.session not in everything

    missing = await fleet.api.get(f"/v1/ops/sessions/s-{'0' * 16}/series", headers=VIEWER)
    assert missing.status_code == 404
    user_token = auth(fleet.agent.user)
    assert (await fleet.api.get("/v1/ops/sessions", headers=user_token)).status_code == 403
    assert (await fleet.api.get("/v1/ops/sessions")).status_code == 401


async def test_search_finds_incidents_and_similar_names_the_earlier_one(fleet: Fleet) -> None:
    first = await fleet.open_incident()
    await fleet.report(4, 40.0)  # the disk has room: the part clears after 2 s, the incident resolves
    await wait_for(lambda: not fleet.diagnostics.incidents(open_only=True))
    second = await fleet.open_incident()
    assert second["incident_id"] != first["incident_id"]

    found = await fleet.get("/v1/ops/incidents", q="DISK critical", state="all")
    assert [i["incident_id"] for i in found["incidents"]] == [second["incident_id"], first["incident_id"]]
    (still_open,) = (await fleet.get("/v1/ops/incidents", q="disk", state="open"))["incidents"]
    assert still_open["incident_id"] == second["incident_id"]
    assert (await fleet.get("/v1/ops/incidents", q="memory", state="all"))["incidents"] == []
    assert (await fleet.get("/v1/ops/incidents", q="nowhere-word", state="all"))["incidents"] == []
    before = await fleet.get(f"/v1/ops/incidents/{second['incident_id']}/similar")
    assert [i["incident_id"] for i in before["incidents"]] == [first["incident_id"]]
    assert (await fleet.get(f"/v1/ops/incidents/{first['incident_id']}/similar"))["incidents"] == []


async def test_each_role_may_do_only_its_own_actions(fleet: Fleet) -> None:
    incident = await fleet.open_incident()
    path = f"/v1/ops/incidents/{incident['incident_id']}/remediations"
    free = {"action": "free_temp_space", "dry_run": True}
    kill = {"action": "end_process", "pid": 4242, "executable": "dd"}
    assert (await fleet.api.post(path, json=free, headers=VIEWER)).status_code == 403
    dry = await fleet.api.post(path, json=free, headers=OPERATOR)
    assert dry.status_code == 200 and dry.json()["status"] == "dry_run", dry.text
    assert (await fleet.api.post(path, json=kill, headers=OPERATOR)).status_code == 403
    asked = await fleet.api.post(path, json=kill, headers=ADMIN)
    assert asked.json()["status"] == "awaiting_approval", asked.text
    approve = f"/v1/ops/remediations/{asked.json()['remediation_id']}/approve"
    for headers in (VIEWER, OPERATOR, ADMIN):  # the requester may not approve either
        assert (await fleet.api.post(approve, headers=headers)).status_code == 403
    approved = await fleet.api.post(approve, headers=ADMIN_2)
    assert approved.status_code == 200 and approved.json()["approved_by"] == "ops-2", approved.text


async def test_only_an_admin_reveals_whose_a_session_is_and_the_audit_log_says_who_asked_why(
    fleet: Fleet,
) -> None:
    await fleet.report(2, 40.0)
    await wait_for(lambda: fleet.diagnostics.sessions())
    path = f"/v1/ops/sessions/{fleet.subject}/reveal"
    reason = {"reason": "the user called the help desk about ticket 77"}
    for headers in (VIEWER, OPERATOR):
        assert (await fleet.api.post(path, json=reason, headers=headers)).status_code == 403
    assert (await fleet.api.post(path, json={"reason": ""}, headers=ADMIN)).status_code == 400
    revealed = await fleet.api.post(path, json=reason, headers=ADMIN)
    assert revealed.status_code == 200, revealed.text
    body = revealed.json()
    assert (body["user_id"], body["session_id"]) == (fleet.agent.user, fleet.agent.session)
    unknown = await fleet.api.post(f"/v1/ops/sessions/s-{'0' * 16}/reveal", json=reason, headers=ADMIN)
    assert unknown.status_code == 404

    audit = await fleet.get("/v1/ops/audit", after_seq=body["audit_seq"] - 1, limit=1)
    assert audit["intact"], audit
    (entry,) = audit["entries"]
    assert (entry["seq"], entry["actor"], entry["reason"], entry["subjects"]) == (
        body["audit_seq"],
        "ops-1",
        reason["reason"],
        [fleet.subject],
    )
    assert fleet.agent.user not in json.dumps(audit)  # every ops role reads the audit log


async def test_the_console_exchanges_its_service_token_for_a_users_role_attributed_to_that_user(
    fleet: Fleet,
) -> None:
    incident = await fleet.open_incident()
    console = auth("admin-console", "ops_console")
    exchange = "/v1/ops/console-tokens"
    for headers in (ADMIN, VIEWER):  # only the console's own token exchanges
        refused = await fleet.api.post(exchange, json={"username": "vic", "role": "admin"}, headers=headers)
        assert refused.status_code == 403
    assert (await fleet.api.get("/v1/ops/sessions", headers=console)).status_code == 403
    bad = await fleet.api.post(exchange, json={"username": "../x", "role": "viewer"}, headers=console)
    assert bad.status_code == 400

    async def token_of(username: str, role: str) -> dict[str, str]:
        got = await fleet.api.post(exchange, json={"username": username, "role": role}, headers=console)
        assert got.status_code == 200, got.text
        assert got.json()["subject"] == f"console.{username}" and got.json()["expires_in_s"] <= 600
        return {"Authorization": f"Bearer {got.json()['token']}"}

    vic, ada = await token_of("vic", "viewer"), await token_of("ada", "admin")
    assert (await fleet.api.get("/v1/ops/sessions", headers=vic)).status_code == 200
    path = f"/v1/ops/incidents/{incident['incident_id']}/remediations"
    assert (await fleet.api.post(path, json={"action": "free_temp_space"}, headers=vic)).status_code == 403
    assert (
        await fleet.api.post(exchange, json={"username": "x", "role": "admin"}, headers=vic)
    ).status_code == 403
    kill = {"action": "end_process", "pid": 4242, "executable": "dd"}
    asked = await fleet.api.post(path, json=kill, headers=ada)
    assert asked.status_code == 200 and asked.json()["requested_by"] == "console.ada", asked.text
    audit = await fleet.get("/v1/ops/audit", headers=vic, limit=500)  # MinIO's operator space is shared
    mine = [
        e for e in audit["entries"] if e["result"].get("remediation_id") == asked.json()["remediation_id"]
    ]
    assert [(e["actor"], e["action"]) for e in mine] == [("console.ada", "remediation.end_process.requested")]


def incident(n: int, rule: Rule, signature: str, app_id: str = "") -> Incident:
    return Incident(
        incident_id=f"inc-{n:012x}",
        rule=rule,
        severity=Severity.WARNING,
        title=rule.value,
        opened_ns=n * NS,
        updated_ns=n * NS,
        explanation="",
        sessions=[],
        signature=signature,
        app_id=app_id,
    )


def test_similar_puts_the_same_signature_first_and_search_reads_app_names() -> None:
    now = incident(9, Rule.DISK_FULL, "disk_full|place=host-a")
    older = [
        incident(1, Rule.DISK_FULL, "disk_full|place=host-a"),
        incident(2, Rule.DISK_FULL, "disk_full|place=host-b"),
        incident(3, Rule.DISK_FULL, "disk_full|place=host-a"),
        incident(4, Rule.MEMORY_PRESSURE, "memory_pressure|place=host-a"),
        incident(10, Rule.DISK_FULL, "disk_full|place=host-a"),  # after it: not "before"
    ]
    assert [i.incident_id for i in similar(now, [now, *older])] == [
        "inc-000000000003",
        "inc-000000000001",
        "inc-000000000002",
    ]
    crash = incident(5, Rule.MEMORY_PRESSURE, "x", app_id="org.mozilla.firefox")
    assert matches(crash, "Firefox memory") and not matches(crash, "chromium")
