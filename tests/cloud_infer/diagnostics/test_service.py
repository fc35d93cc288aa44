"""Diagnostics as a consumer of the real committed stream (gRPC ingest, fan-out, store), read over HTTP.

Two users' desktops report memory over 95 % for more than ten seconds: one incident with both sessions,
under pseudonyms; admins read it through ``/v1/ops/incidents``, other tokens are refused, and the
incident (in the operator space, none in a user's) says nothing of whose sessions they are.
"""

from __future__ import annotations

import json

import pytest

from cloud_infer.app import build_app
from cloud_infer.auth import issue_token
from cloud_infer.config import ServerSettings
from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.rules import Rule
from cloud_infer.diagnostics.service import DiagnosticsService, pseudonym, pseudonym_key
from cloud_infer.server import create_grpc_server, ingest_service
from cloud_infer.services import Services
from cloud_infer.stream import Fanout, StreamSettings
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.directory import UserDirectory
from recall_store.errors import StoreUnavailableError
from recall_store.event_log import EventLog
from recall_store.naming import SYSTEM_SPACE
from tests.support.cloud import SECRET, FaultyStore, now_ns, read_auth, serve_api, wait_for
from tests.support.commands_agent import TestAgent
from tests.support.diagnostics_desk import GIB


def metrics(agent: TestAgent, t_ns: int, memory_percent: float) -> pb.Event:
    agent.seq += 1
    sample = pb.SystemMetrics(
        cpu_percent=20.0,
        memory_used_bytes=int(16 * GIB * memory_percent / 100),
        memory_total_bytes=16 * GIB,
        disk_used_percent=40.0,
    )
    return pb.Event(seq=agent.seq, time_unix_nano=t_ns, metrics=sample)


async def test_one_fault_on_two_desktops_is_one_incident_that_admins_read_without_whose(
    settings: ServerSettings, store: FaultyStore, user: str, session: str
) -> None:
    directory = UserDirectory(store)
    stream = Fanout(StreamSettings(cursor_save_interval_s=0), EventLog(store), directory)
    key = pseudonym_key(SECRET)
    diagnostics = DiagnosticsService(store, DiagnosticsSettings(), key)
    diagnostics.consume(stream)
    stream.start()
    service = ingest_service(settings, store, directory=directory, stream=stream)
    server, port = await create_grpc_server(settings, service)
    other = f"other-{user}"
    agents = [TestAgent(f"127.0.0.1:{port}", user, session), TestAgent(f"127.0.0.1:{port}", other, "desk-b")]
    try:
        for agent in agents:
            await agent.connect()
        start = now_ns() - 60 * 1_000_000_000
        # Normal, then 14 s over 95 %: the rule needs 10 s held.
        for second in range(20):
            for agent in agents:
                level = 60.0 if second < 6 else 97.5
                await agent.send([metrics(agent, start + second * 1_000_000_000, level)])
        await wait_for(lambda: diagnostics.incidents() and len(diagnostics.incidents()[0].sessions) == 2)
        (incident,) = diagnostics.incidents()
        assert incident.rule is Rule.MEMORY_PRESSURE and incident.open
        assert {s.subject for s in incident.sessions} == {
            pseudonym(key, user, session),
            pseudonym(key, other, "desk-b"),
        }
        assert incident.explanation.startswith("2 sessions are affected. Memory in use has been above 95 %")

        app = build_app(settings, Services.create(settings, store, diagnostics=diagnostics))
        async with serve_api(app) as client:
            admin = {"Authorization": f"Bearer {issue_token(SECRET, 'ops-1', ['read', 'admin'])}"}
            listed = await client.get("/v1/ops/incidents", headers=admin)
            assert listed.status_code == 200, listed.text
            (shown,) = listed.json()["incidents"]
            assert shown["incident_id"] == incident.incident_id and len(shown["sessions"]) == 2
            one = await client.get(f"/v1/ops/incidents/{incident.incident_id}", headers=admin)
            assert one.status_code == 200 and one.json()["evidence"], one.text
            for leak in (user, other, session, "desk-b"):
                assert leak not in listed.text and leak not in one.text
            assert (await client.get("/v1/ops/incidents", headers=read_auth(user))).status_code == 403
            assert (await client.get("/v1/ops/incidents")).status_code == 401
            missing = await client.get("/v1/ops/incidents/inc-000000000000", headers=admin)
            assert missing.status_code == 404

        # Kept in the operator space only, and listed again after a restart.
        # (The operator space is shared by every test on this MinIO.)
        stored = f"ops/incidents/{incident.incident_id}.json"
        assert stored in await store.list_keys(SYSTEM_SPACE, "ops/incidents/")
        assert json.loads(await store.get(SYSTEM_SPACE, stored))["rule"] == "memory_pressure"
        assert not [k for k in await store.list_keys(user) if k.startswith("ops/")]
        restarted = DiagnosticsService(store, DiagnosticsSettings(), key)
        await restarted.load()
        assert incident.incident_id in [i.incident_id for i in restarted.incidents()]
    finally:
        for agent in agents:
            await agent.close()
        await server.stop(None)
        await stream.close()


async def test_a_store_that_is_down_at_start_leaves_diagnostics_running_without_earlier_incidents(
    store: FaultyStore,
) -> None:
    store.down = True
    diagnostics = DiagnosticsService(store, DiagnosticsSettings(), pseudonym_key(SECRET))
    await diagnostics.load()
    assert diagnostics.incidents() == []


async def test_an_incident_the_store_could_not_take_is_saved_when_the_batch_comes_again(
    store: FaultyStore, user: str, session: str
) -> None:
    diagnostics = DiagnosticsService(store, DiagnosticsSettings(), pseudonym_key(SECRET))
    agent = TestAgent("unused", user, session)
    start = now_ns()
    events = [metrics(agent, start + second * 1_000_000_000, 99.0) for second in range(12)]
    store.down = True
    with pytest.raises(StoreUnavailableError):
        await diagnostics.on_committed(user, session, events)
    store.down = False
    await diagnostics.on_committed(user, session, events)  # the stream's retry
    (incident,) = diagnostics.incidents()
    stored = await store.list_keys(SYSTEM_SPACE, "ops/incidents/")
    assert f"ops/incidents/{incident.incident_id}.json" in stored


async def test_a_users_sessions_are_known_by_pseudonym_until_their_metrics_are_forgotten(
    store: FaultyStore, user: str
) -> None:
    diagnostics = DiagnosticsService(store, DiagnosticsSettings(max_sessions=2), pseudonym_key(SECRET))
    key = pseudonym_key(SECRET)
    for session in ("desk-a", "desk-b"):
        agent = TestAgent("unused", user, session)
        await diagnostics.on_committed(user, session, [metrics(agent, now_ns(), 10.0)])
    assert diagnostics.subjects_of(user) == {pseudonym(key, user, "desk-a"), pseudonym(key, user, "desk-b")}
    assert diagnostics.subjects_of("someone-else") == frozenset()
    other = TestAgent("unused", "someone-else", "desk-c")
    await diagnostics.on_committed("someone-else", "desk-c", [metrics(other, now_ns(), 10.0)])
    # Beyond max_sessions the least recently reporting session is forgotten, pseudonym and all.
    assert diagnostics.subjects_of(user) == {pseudonym(key, user, "desk-b")}
    assert diagnostics.subjects_of("someone-else") == {pseudonym(key, "someone-else", "desk-c")}
