"""The commands API on a real uvicorn in front of the real gRPC downlink: who may command what, over
HTTP and the results websocket, and what a request may be."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from websockets.typing import Subprotocol

from cloud_infer.app import build_app
from cloud_infer.auth import issue_token
from cloud_infer.config import ServerSettings
from cloud_infer.services import Services
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.cloud import SECRET, FaultyStore, manage_auth, read_auth, serve_api
from tests.support.command_stack import CommandStack
from tests.support.commands_agent import TestAgent, every_object

KEYS = {"workflow_step": {"press_keys": {"keys": "ctrl+s"}}}
FREE_TEMP = {"remediation": {"free_temp_space": {"older_than_s": 86400}}}
BOB = "bob@example.com"


def admin_auth(admin: str = "ops-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, admin, ['read', 'admin'])}"}


@pytest.fixture
async def api(
    settings: ServerSettings, store: FaultyStore, stack: CommandStack
) -> AsyncIterator[httpx.AsyncClient]:
    services = Services.create(settings, store, commands=stack.commands)
    async with serve_api(build_app(settings, services)) as client:
        yield client


def commands_url(session: str, *more: str, user: str | None = None) -> str:
    """``/v1/sessions/<session>/commands[/<more>...][?user=<user>]``."""
    path = "/".join((f"/v1/sessions/{session}/commands", *more))
    return f"{path}?user={user}" if user else path


async def test_issue_deliver_and_complete_over_http_with_results_on_the_websocket(
    api: httpx.AsyncClient, agent: TestAgent
) -> None:
    await agent.connect()
    read_token = issue_token(SECRET, agent.user, "read")
    url = f"ws://127.0.0.1:{api.base_url.port}/v1/commands/live"
    protocols = [Subprotocol("shadowdesk.v1"), Subprotocol(f"bearer.{read_token}")]
    try:
        async with websockets.connect(url, subprotocols=protocols) as socket:
            answer = await api.post(
                commands_url(agent.session),
                json={**KEYS, "deadline_s": 30, "idempotency_key": "k-1"},
                headers=manage_auth(agent.user),
            )
            assert answer.status_code == 200, answer.text
            issued = answer.json()
            assert (issued["status"], issued["action"]) == ("queued", "workflow_step.press_keys")
            assert issued["issuer"] == {"kind": "user", "id": agent.user}
            command = await agent.next_command()
            assert command.command_id == issued["command_id"]
            await agent.result(command.command_id, observed={"value": "saved"})
            statuses = []
            while not statuses or statuses[-1] != "succeeded":
                message = json.loads(await asyncio.wait_for(socket.recv(), 10))
                assert message["type"] == "command"
                assert message["command"]["command_id"] == command.command_id
                statuses.append(message["command"]["status"])
            assert statuses == ["queued", "delivered", "succeeded"]
            await socket.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(socket.recv(), 5)) == {"type": "pong"}

        done = await api.get(commands_url(agent.session, command.command_id), headers=read_auth(agent.user))
        assert done.status_code == 200
        assert (done.json()["status"], done.json()["observed"]) == ("succeeded", {"value": "saved"})
        again = {**KEYS, "idempotency_key": "k-1"}
        same = await api.post(commands_url(agent.session), json=again, headers=manage_auth(agent.user))
        assert same.json()["command_id"] == command.command_id
    finally:
        await agent.close()


async def test_a_user_cannot_command_another_users_session(api: httpx.AsyncClient, agent: TestAgent) -> None:
    await agent.connect()
    await agent.close()
    # bob's own space has no such session: as far as bob can tell, it does not exist
    unseen = await api.post(commands_url(agent.session), json=KEYS, headers=manage_auth(BOB))
    assert (unseen.status_code, unseen.json()["code"]) == (404, "not_found")
    named = await api.post(commands_url(agent.session, user=agent.user), json=KEYS, headers=manage_auth(BOB))
    assert (named.status_code, named.json()["code"]) == (403, "permission_denied")
    # a read token looks but does not act
    weak = await api.post(commands_url(agent.session), json=KEYS, headers=read_auth(agent.user))
    assert weak.status_code == 403
    mine = await api.post(commands_url(agent.session), json=KEYS, headers=manage_auth(agent.user))
    command_id = mine.json()["command_id"]
    hidden = await api.get(commands_url(agent.session, command_id), headers=read_auth(BOB))
    assert hidden.status_code == 404
    peek = await api.get(commands_url(agent.session, command_id, user=agent.user), headers=read_auth(BOB))
    assert peek.status_code == 403
    cancel_url = commands_url(agent.session, command_id, "cancel")
    assert (await api.post(f"{cancel_url}?user={agent.user}", headers=read_auth(BOB))).status_code == 403
    cancelled = await api.post(cancel_url, headers=read_auth(agent.user))
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")


async def test_a_user_lists_their_own_sessions_and_which_are_connected(
    api: httpx.AsyncClient, agent: TestAgent
) -> None:
    assert (await api.get("/v1/sessions", headers=read_auth(agent.user))).json() == {"sessions": []}
    await agent.connect()
    try:
        listed = await api.get("/v1/sessions", headers=read_auth(agent.user))
        assert listed.status_code == 200, listed.text
        assert listed.json() == {"sessions": [{"session_id": agent.session, "connected": True}]}
        # another user sees none of them
        assert (await api.get("/v1/sessions", headers=read_auth(BOB))).json() == {"sessions": []}
    finally:
        await agent.close()
    # known, but no agent connected now
    gone = await api.get("/v1/sessions", headers=read_auth(agent.user))
    assert gone.json() == {"sessions": [{"session_id": agent.session, "connected": False}]}
    assert (await api.get("/v1/sessions")).status_code == 401


async def test_an_admin_may_send_remediation_but_not_workflow_steps(
    api: httpx.AsyncClient, agent: TestAgent
) -> None:
    await agent.connect()
    try:
        owned = commands_url(agent.session, user=agent.user)
        step = await api.post(owned, json=KEYS, headers=admin_auth())
        assert (step.status_code, step.json()["code"]) == (403, "permission_denied")
        fix = await api.post(owned, json=FREE_TEMP, headers=admin_auth())
        assert fix.status_code == 200, fix.text
        assert fix.json()["issuer"] == {"kind": "admin", "id": "ops-1"}
        command = await agent.next_command()
        assert command.issuer == pb.Issuer(kind=pb.Issuer.KIND_ADMIN, id="ops-1")
        assert command.remediation.free_temp_space.older_than_s == 86400
        url = commands_url(agent.session, command.command_id, user=agent.user)
        read = await api.get(url, headers=admin_auth())
        assert read.json()["status"] == "delivered"
        # the user sees what was done to their desktop
        theirs = await api.get(commands_url(agent.session, command.command_id), headers=read_auth(agent.user))
        assert theirs.json()["action"] == "remediation.free_temp_space"
        mine = await api.post(commands_url(agent.session), json=KEYS, headers=manage_auth(agent.user))
        secret_step = commands_url(agent.session, mine.json()["command_id"], user=agent.user)
        assert (await api.get(secret_step, headers=admin_auth())).status_code == 403
    finally:
        await agent.close()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({**KEYS, **FREE_TEMP}, 400),
        ({"workflow_step": {"press_keys": {"keys": "a", "bogus": 1}}}, 400),
        ({"workflow_step": {}}, 400),
        ({"workflow_step": {"type_text": {"text": "x", "use_secret": True}}}, 400),
        ({**KEYS, "deadline_s": 30 * 86400}, 400),
        ({**KEYS, "deadline_s": -1}, 400),
        ({**KEYS, "idempotency_key": "has space"}, 400),
        ({**KEYS, "secret": "s" * 5000}, 400),
        ({**KEYS, "surprise": True}, 400),
        ({"notice": {"title": "t", "body": "x" * 40_000}}, 413),
    ],
)
async def test_malformed_requests_are_refused(
    api: httpx.AsyncClient, agent: TestAgent, body: dict[str, object], status: int
) -> None:
    await agent.connect()
    await agent.close()
    answer = await api.post(commands_url(agent.session), json=body, headers=manage_auth(agent.user))
    assert answer.status_code == status, answer.text
    assert (await api.post(commands_url(agent.session), json=KEYS)).status_code == 401


async def test_a_secret_from_the_api_is_never_stored_or_echoed(
    api: httpx.AsyncClient, agent: TestAgent, store: FaultyStore
) -> None:
    secret = "Tr0ub4dor&3-canary"
    await agent.connect()
    try:
        body = {"workflow_step": {"type_text": {"element": {"role": "password text"}, "use_secret": True}}}
        answer = await api.post(
            commands_url(agent.session), json={**body, "secret": secret}, headers=manage_auth(agent.user)
        )
        assert answer.status_code == 200 and secret not in answer.text
        command = await agent.next_command()
        assert command.secret == secret
        await agent.result(command.command_id)
        done = await api.get(commands_url(agent.session, command.command_id), headers=read_auth(agent.user))
        assert done.json()["status"] in ("delivered", "succeeded") and secret not in done.text
    finally:
        await agent.close()
    for key, data in (await every_object(store, agent.user)).items():
        assert secret.encode() not in data, key
