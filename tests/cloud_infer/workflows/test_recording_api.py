"""Recording through a real server: a real gRPC ingest stream acts as the agent (it receives the
RecordingControl command and answers with RecordedAction events and a CommandResult), the committed
stream feeds the collector, stop compiles and saves a macro read back over HTTP. Plus the macro API's
validation, isolation between users, and erase-everything."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
import yaml

from cloud_infer.app import build_app
from cloud_infer.commands import CommandService, CommandSettings
from cloud_infer.config import ServerSettings
from cloud_infer.privacy.filter import PrivacyFilter
from cloud_infer.privacy.protocol import PrivacySettings
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.config import RecallSettings
from cloud_infer.server import create_grpc_server, ingest_service
from cloud_infer.services import Services
from cloud_infer.stream import Fanout, StreamSettings
from cloud_infer.workflows.program import from_yaml
from cloud_infer.workflows.service import WorkflowService
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.config import StoreSettings
from recall_store.directory import UserDirectory
from recall_store.event_log import EventLog
from tests.support.cloud import FaultyStore, manage_auth, read_auth, serve_api
from tests.support.commands_agent import TestAgent
from tests.support.recordings import CLAIM_NUMBER, expense_claim

BOB = "bob@example.com"


@dataclass
class Stack:
    workflows: WorkflowService
    stream: Fanout
    server: grpc.aio.Server
    port: int


@pytest.fixture
async def stack(settings: ServerSettings, store: FaultyStore) -> AsyncIterator[Stack]:
    """What ``cloud_infer.server.serve`` wires to record: ingest, privacy, downlink, fan-out, workflows."""
    directory = UserDirectory(store)
    stream = Fanout(StreamSettings(cursor_save_interval_s=0), EventLog(store), directory)
    commands = CommandService(store, CommandSettings())
    commands.consume(stream)
    workflows = WorkflowService(store, commands)
    workflows.consume(stream)
    stream.start()
    privacy = PrivacyFilter(PrivacyService(store), store)
    service = ingest_service(settings, store, directory=directory, privacy=privacy, stream=stream)
    server, port = await create_grpc_server(settings, service, commands=commands)
    yield Stack(workflows, stream, server, port)
    await server.stop(None)
    await stream.close()


@pytest.fixture
async def api(settings: ServerSettings, store: FaultyStore, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    services = Services.create(settings, store, commands=stack.workflows.commands, workflows=stack.workflows)
    async with serve_api(build_app(settings, services)) as client:
        yield client


@pytest.fixture
def agent(stack: Stack, user: str, session: str) -> TestAgent:
    return TestAgent(f"127.0.0.1:{stack.port}", user, session)


async def record_expense_claim(api: httpx.AsyncClient, agent: TestAgent) -> dict[str, object]:
    """Start over HTTP, act as the agent's recorder, stop over HTTP; the stop's answer."""
    started = await api.post(
        "/v1/workflows/recordings", json={"session_id": agent.session}, headers=manage_auth(agent.user)
    )
    assert started.status_code == 200, started.text
    recording_id = started.json()["recording_id"]
    start = await agent.next_command()
    assert start.WhichOneof("kind") == "recording"
    assert (start.recording.recording_id, start.recording.action) == (
        recording_id,
        pb.RecordingControl.ACTION_START,
    )
    assert start.issuer == pb.Issuer(kind=pb.Issuer.KIND_USER, id=agent.user)
    await agent.result(start.command_id)
    script = expense_claim(recording_id)
    events = []
    for rec in script.actions[:-1]:  # STOPPED comes when the stop command does
        events.append(agent.event(recorded=rec.action))
        for seen in script.texts:
            if seen.time_ns == rec.time_ns:
                events.append(
                    agent.event(text=pb.TextSnapshot(window_id=22, app_id=seen.app_id, text=seen.text))
                )
    for i in range(0, len(events), 20):
        await agent.send(events[i : i + 20])

    async def answer_stop() -> None:
        stop = await agent.next_command()
        assert (stop.recording.recording_id, stop.recording.action) == (
            recording_id,
            pb.RecordingControl.ACTION_STOP,
        )
        await agent.send([agent.event(recorded=script.actions[-1].action)])
        await agent.result(stop.command_id)

    answering = asyncio.create_task(answer_stop())
    stopped = await api.post(
        f"/v1/workflows/recordings/{recording_id}/stop",
        json={"name": "报销 expense claim"},
        headers=manage_auth(agent.user),
    )
    await answering
    assert stopped.status_code == 200, stopped.text
    answer: dict[str, object] = stopped.json()
    return answer


async def test_record_stop_compile_and_read_the_macro_back(api: httpx.AsyncClient, agent: TestAgent) -> None:
    await agent.connect()
    try:
        stopped = await record_expense_claim(api, agent)
    finally:
        await agent.close()
    program = from_yaml(str(stopped["document"]))
    assert program.name == "报销 expense claim" and stopped["version"] == 1
    assert {p.name for p in program.parameters} >= {"vendor", "password", "category", "invoice_date"}
    assert program.final_checks[0].equals is not None
    assert stopped["program"]["steps"][0]["action"] == "focus"  # type: ignore[index]
    macro_id = stopped["macro_id"]
    listed = await api.get("/v1/workflows/macros", headers=read_auth(agent.user))
    assert [m["macro_id"] for m in listed.json()] == [macro_id]
    got = await api.get(f"/v1/workflows/macros/{macro_id}", headers=read_auth(agent.user))
    assert got.status_code == 200 and got.json()["document"] == stopped["document"]
    assert CLAIM_NUMBER not in got.text  # the pattern is kept, not the demonstration's claim number
    recording = await api.get(
        f"/v1/workflows/recordings/{stopped['recording_id']}", headers=read_auth(agent.user)
    )
    assert recording.json()["status"] == "compiled" and recording.json()["macro_id"] == macro_id
    again = await api.post(
        f"/v1/workflows/recordings/{stopped['recording_id']}/stop", headers=manage_auth(agent.user)
    )
    assert again.json()["macro_id"] == macro_id  # stopping again: the same macro, not a second one


async def test_edit_versions_validation_errors_and_delete(api: httpx.AsyncClient, agent: TestAgent) -> None:
    await agent.connect()
    try:
        stopped = await record_expense_claim(api, agent)
    finally:
        await agent.close()
    url = f"/v1/workflows/macros/{stopped['macro_id']}"
    document = str(stopped["document"]).replace("报销 expense claim", "报销 v2")
    saved = await api.put(url, content=document.encode(), headers=manage_auth(agent.user))
    assert saved.status_code == 200, saved.text
    assert (saved.json()["version"], saved.json()["versions"]) == (2, [1, 2])
    first = await api.get(f"{url}?version=1", headers=read_auth(agent.user))
    assert from_yaml(first.json()["document"]).name == "报销 expense claim"
    # a broken document: every problem with its path, for the editor
    data = yaml.safe_load(document)
    data["steps"][1]["input"] = {"param": "no_such_param"}
    data["steps"][2]["timeout_s"] = -1
    bad = await api.put(
        url, content=yaml.safe_dump(data, allow_unicode=True).encode(), headers=manage_auth(agent.user)
    )
    assert bad.status_code == 400
    problems = bad.json()["errors"]
    assert any(p["path"].startswith("steps.2") and "timeout_s" in p["path"] for p in problems), problems
    for text, fragment in [
        ("name: [unclosed", "line 1"),
        ("- just\n- a list\n", "mapping"),
        ("a: &x [1]\nb: *x\n", "aliases"),
        ("version: 1\nname: x\nsteps: []\n", "steps"),
    ]:
        answer = await api.put(url, content=text.encode(), headers=manage_auth(agent.user))
        assert answer.status_code == 400, text
        assert fragment in str(answer.json()["errors"]), answer.json()
    assert (await api.put(url, content=b"\xff\xfe", headers=manage_auth(agent.user))).status_code == 400
    assert (await api.put(url, content=document.encode(), headers=read_auth(agent.user))).status_code == 403
    huge = document + "#" * (300 * 1024)
    assert (await api.put(url, content=huge.encode(), headers=manage_auth(agent.user))).status_code == 413
    latest = await api.get(url, headers=read_auth(agent.user))
    assert latest.json()["version"] == 2  # nothing invalid was stored
    schema = await api.get("/v1/workflows/schema", headers=read_auth(agent.user))
    assert schema.json()["title"] == "Program"
    assert (await api.delete(url, headers=read_auth(agent.user))).status_code == 403
    assert (await api.delete(url, headers=manage_auth(agent.user))).status_code == 204
    assert (await api.get(url, headers=read_auth(agent.user))).status_code == 404
    assert (await api.get("/v1/workflows/macros", headers=read_auth(agent.user))).json() == []


async def test_a_user_never_reaches_another_users_recordings_or_macros(
    api: httpx.AsyncClient, agent: TestAgent, store: FaultyStore
) -> None:
    await agent.connect()
    try:
        stopped = await record_expense_claim(api, agent)
        url = f"/v1/workflows/macros/{stopped['macro_id']}"
        recording_url = f"/v1/workflows/recordings/{stopped['recording_id']}"
        assert (await api.get(url, headers=read_auth(BOB))).status_code == 404
        assert (await api.get(recording_url, headers=read_auth(BOB))).status_code == 404
        assert (await api.post(f"{recording_url}/stop", headers=manage_auth(BOB))).status_code == 404
        assert (await api.delete(url, headers=manage_auth(BOB))).status_code == 404
        assert (await api.get("/v1/workflows/macros", headers=read_auth(BOB))).json() == []
        # bob's PUT under alice's id makes bob's own macro; alice's is untouched
        mine = await api.put(url, content=str(stopped["document"]).encode(), headers=manage_auth(BOB))
        assert mine.status_code == 200 and mine.json()["version"] == 1
        assert (await api.get(url, headers=read_auth(agent.user))).json()["version"] == 1
        # bob cannot record on alice's session, nor can a read token or an admin record at all
        start = {"session_id": agent.session}
        assert (
            await api.post("/v1/workflows/recordings", json=start, headers=manage_auth(BOB))
        ).status_code == 404
        assert (
            await api.post("/v1/workflows/recordings", json=start, headers=read_auth(agent.user))
        ).status_code == 403
        await agent.no_command_within(0.3)
    finally:
        await agent.close()
    assert not [k for k in await store.list_keys(BOB) if k.startswith("workflows/recordings/")]


async def test_recorded_actions_naming_another_recording_or_of_a_private_window_are_not_collected(
    api: httpx.AsyncClient, agent: TestAgent, stack: Stack, store: FaultyStore
) -> None:
    await PrivacyService(store).put(agent.user, PrivacySettings(excluded_apps=["keepassxc"]))
    await agent.connect()
    try:
        started = await api.post(
            "/v1/workflows/recordings", json={"session_id": agent.session}, headers=manage_auth(agent.user)
        )
        recording_id = started.json()["recording_id"]
        await agent.result((await agent.next_command()).command_id)
        vault = pb.WindowRef(window_id=44, app_id="keepassxc")
        portal = pb.WindowRef(window_id=22, app_id="chromium")
        actions = [
            pb.RecordedAction(
                recording_id=recording_id,
                kind=pb.RecordedAction.KIND_FOCUS,
                window=vault,
                window_title="vault",
            ),
            pb.RecordedAction(
                recording_id=recording_id,
                kind=pb.RecordedAction.KIND_COPY,
                window=vault,
                value="hunter2-canary",
            ),
            pb.RecordedAction(recording_id="someone-elses", kind=pb.RecordedAction.KIND_FOCUS, window=portal),
            pb.RecordedAction(
                recording_id=recording_id,
                kind=pb.RecordedAction.KIND_FOCUS,
                window=portal,
                window_title="Portal",
            ),
        ]
        await agent.send([agent.event(recorded=a) for a in actions])
        recording_url = f"/v1/workflows/recordings/{recording_id}"

        async def collected() -> int:
            return int((await api.get(recording_url, headers=read_auth(agent.user))).json()["actions"])

        for _ in range(100):
            if await collected() >= 1:
                break
            await asyncio.sleep(0.05)
        assert await collected() == 1  # only the portal focus: the vault's were redacted at ingest
    finally:
        await agent.close()
    for key in await store.list_keys(agent.user):
        assert b"hunter2-canary" not in await store.get(agent.user, key), key


async def test_bad_recorded_actions_are_refused_at_ingest(stack: Stack, agent: TestAgent) -> None:
    from tests.support.cloud import AgentStream, batch, hello, ingest_token

    bad = [
        pb.RecordedAction(recording_id="", kind=pb.RecordedAction.KIND_FOCUS),
        pb.RecordedAction(recording_id="r1"),
        pb.RecordedAction(
            recording_id="r1", kind=pb.RecordedAction.KIND_FIELD_VALUE, secret=True, value="pw"
        ),
        pb.RecordedAction(
            recording_id="r1", kind=pb.RecordedAction.KIND_CLICK, element=pb.ElementRef(path=list(range(65)))
        ),
        pb.RecordedAction(recording_id="r1", kind=pb.RecordedAction.KIND_KEY_COMMAND, keys="k" * 65),
        pb.RecordedAction(recording_id="r1", kind=pb.RecordedAction.KIND_FIELD_VALUE, value="v" * 70_000),
        pb.RecordedAction(
            recording_id="r1", kind=pb.RecordedAction.KIND_CLICK, element=pb.ElementRef(role="r" * 65)
        ),
    ]
    for action in bad:
        stream = AgentStream(f"127.0.0.1:{stack.port}", ingest_token(agent.user, agent.session))
        event = pb.Event(seq=1, time_unix_nano=agent.event().time_unix_nano, recorded=action)
        code, details = await stream.status(hello(agent.user, agent.session), batch([event]))
        await stream.close()
        assert code is grpc.StatusCode.INVALID_ARGUMENT, (action, details)
        assert "recorded" in details


async def test_erase_everything_removes_workflow_data(
    api: httpx.AsyncClient, agent: TestAgent, store: FaultyStore, store_settings: StoreSettings
) -> None:
    from cloud_infer.llm.config import LLMSettings
    from cloud_infer.llm.gateway import LLMGateway
    from cloud_infer.recall.runtime import open_recall

    await agent.connect()
    try:
        stopped = await record_expense_claim(api, agent)
    finally:
        await agent.close()
    assert [k for k in await store.list_keys(agent.user) if k.startswith("workflows/")]
    runtime = open_recall(
        RecallSettings(),
        store_settings,
        store,
        PrivacyService(store),
        LLMGateway(LLMSettings(backend="none"), None),
    )
    try:
        await runtime.service.erase_everything(agent.user)
    finally:
        await runtime.close()
    assert not [k for k in await store.list_keys(agent.user) if k.startswith("workflows/")]
    assert (
        await api.get(f"/v1/workflows/macros/{stopped['macro_id']}", headers=read_auth(agent.user))
    ).status_code == 404
    assert (await api.get("/v1/workflows/macros", headers=read_auth(agent.user))).json() == []


async def test_an_admin_may_not_record_a_users_desktop_but_the_system_may(
    stack: Stack, agent: TestAgent
) -> None:
    from cloud_infer.commands import Issuer
    from cloud_infer.errors import PermissionDeniedError

    await agent.connect()
    try:
        with pytest.raises(PermissionDeniedError):
            await stack.workflows.start_recording(Issuer.admin("ops-1"), agent.user, agent.session)
        with pytest.raises(PermissionDeniedError):
            await stack.workflows.start_recording(Issuer.user(BOB), agent.user, agent.session)
        recording = await stack.workflows.start_recording(
            Issuer.system("workflows"), agent.user, agent.session
        )
        command = await agent.next_command()
        assert command.recording.recording_id == recording.recording_id
    finally:
        await agent.close()
