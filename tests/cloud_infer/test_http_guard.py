"""The HTTP API's front door on a real uvicorn: who gets in, what a request may cost, what comes back.

Each test reproduces an attack from the security review of 3f6b07e: a 100 MB body without a token,
slow and idle connections, a read token erasing or unpausing, tokens in websocket URLs, foreign
origins, binary frames, a flood of one endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import httpx
import psutil
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from cloud_infer import live_socket
from cloud_infer.app import build_app
from cloud_infer.auth import issue_token
from cloud_infer.config import ServerSettings
from cloud_infer.services import Services
from cloud_infer.tenancy.config import TenantLimitSettings
from tests.support.cloud import SECRET, FaultyStore, manage_auth, read_auth, serve_api

MIB = 1 << 20


@pytest.fixture
def guarded(settings: ServerSettings) -> ServerSettings:
    return settings.model_copy(
        update={"http_body_timeout_s": 1.0, "http_header_timeout_s": 1.0, "http_keepalive_s": 1}
    )


@pytest.fixture
async def api(guarded: ServerSettings, store: FaultyStore) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_api(build_app(guarded, Services.create(guarded, store))) as client:
        yield client


def _port(client: httpx.AsyncClient) -> int:
    return client.base_url.port or 80


async def _raw(port: int, request: bytes, read_timeout_s: float = 5.0) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it (or the timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(read_timeout_s):
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()


async def test_a_huge_body_without_a_token_is_refused_before_it_is_read(api: httpx.AsyncClient) -> None:
    process = psutil.Process()
    before = process.memory_info().rss
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(api))
    head = (
        "PUT /v1/privacy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100 * MIB}\r\n\r\n"
    )
    writer.write(head.encode())
    started = time.monotonic()
    sent = 0
    with contextlib.suppress(ConnectionError):
        while sent < 100 * MIB and not reader.at_eof():
            writer.write(b"x" * MIB)
            await asyncio.wait_for(writer.drain(), 5)
            sent += MIB
            if reader._buffer:  # type: ignore[attr-defined]  # the answer came back: stop sending
                break
    answer = await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert time.monotonic() - started < 5
    assert sent < 100 * MIB, "the server answered before the body was sent"
    assert process.memory_info().rss - before < 50 * MIB


async def test_bodies_over_a_routes_limit_get_413_declared_or_streamed(api: httpx.AsyncClient) -> None:
    auth = read_auth("ann")
    declared = await api.put("/v1/privacy", content=b"{" + b" " * MIB + b"}", headers=auth)
    assert declared.status_code == 413 and declared.json()["code"] == "too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b" " * (32 * 1024)

    streamed = await api.put("/v1/privacy", content=chunks(), headers=auth)  # chunked: no length
    assert streamed.status_code == 413
    assert (await api.get("/v1/privacy", headers=auth)).json()["paused"] is False, "nothing applied"


async def test_slow_bodies_slow_headers_and_idle_connections_are_cut(api: httpx.AsyncClient) -> None:
    token = issue_token(SECRET, "ann", "read")
    slow_body = (
        f"PUT /v1/privacy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    ).encode()
    started = time.monotonic()
    answer = await _raw(_port(api), slow_body, read_timeout_s=8)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 5

    started = time.monotonic()
    assert await _raw(_port(api), b"GET /health HTTP/1.1\r\nHost:", read_timeout_s=8) == b""
    assert time.monotonic() - started < 5, "a connection that never finishes its headers is closed"

    started = time.monotonic()
    idle = await _raw(_port(api), b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", read_timeout_s=8)
    assert idle.startswith(b"HTTP/1.1 200") and time.monotonic() - started < 5, "idle keep-alive is closed"


async def test_every_answer_is_uncacheable_and_unsniffable(api: httpx.AsyncClient) -> None:
    for reply in (
        await api.get("/v1/privacy", headers=read_auth("ann")),
        await api.get("/v1/frames/desk-1/000000000001.png", headers=read_auth("ann")),
        await api.get("/v1/privacy"),
    ):
        assert reply.headers["cache-control"] == "no-store", reply.url
        assert reply.headers["x-content-type-options"] == "nosniff"


async def test_a_read_token_cannot_destroy_or_reduce_privacy(api: httpx.AsyncClient) -> None:
    reader, manager = read_auth("ann"), manage_auth("ann")
    for method, path, body in (
        ("POST", "/v1/recall/erase", {"everything": True}),
        ("DELETE", "/v1/recall/moments/desk-1.1", None),
    ):
        reply = await api.request(method, path, json=body, headers=reader)
        assert reply.status_code == 403 and "manage" in reply.json()["message"], (path, reply.text)

    # Capturing less needs only read: a person can always pause.
    paused = {"paused": True, "excluded_apps": ["keepassxc"], "excluded_title_patterns": ["secret"]}
    assert (await api.put("/v1/privacy", json=paused, headers=reader)).status_code == 200
    for change in (
        {**paused, "paused": False},
        {**paused, "excluded_apps": []},
        {**paused, "excluded_title_patterns": []},
        {**paused, "retention_days": 3650},
        {**paused, "retention_max_bytes": 1},
    ):
        reply = await api.put("/v1/privacy", json=change, headers=reader)
        assert reply.status_code == 403 and "manage" in reply.json()["message"], change
    assert (await api.get("/v1/privacy", headers=reader)).json()["paused"] is True, "nothing changed"
    assert (
        await api.put("/v1/privacy", json={**paused, "paused": False}, headers=manager)
    ).status_code == 200


async def test_revocation_refresh_and_single_use_login(api: httpx.AsyncClient) -> None:
    ticket = issue_token(SECRET, "ann", "login", grants=["read", "manage"])
    session = await api.post("/v1/auth/session", json={"ticket": ticket})
    assert session.status_code == 200, session.text
    token = session.json()["token"]
    assert set(session.json()["scopes"]) == {"read", "manage"}
    again = await api.post("/v1/auth/session", json={"ticket": ticket})
    assert again.status_code == 401 and "already used" in again.json()["message"]
    auth = {"Authorization": f"Bearer {token}"}
    refreshed = await api.post("/v1/auth/refresh", headers=auth)
    assert refreshed.status_code == 200 and refreshed.json()["token"] != token

    assert (await api.post("/v1/auth/revoke", headers=read_auth("ann"))).status_code == 403
    assert (await api.post("/v1/auth/revoke", headers=auth)).status_code == 200
    for revoked in (auth, {"Authorization": f"Bearer {refreshed.json()['token']}"}):
        reply = await api.get("/v1/privacy", headers=revoked)
        assert reply.status_code == 401 and "revoked" in reply.json()["message"]
    assert (await api.get("/v1/privacy", headers=read_auth("bob"))).status_code == 200, "only ann's"
    await asyncio.sleep(1.1)  # tokens issued after the revoked second work again
    assert (await api.get("/v1/privacy", headers=read_auth("ann"))).status_code == 200


async def test_one_user_over_a_limit_gets_429_and_others_do_not(
    guarded: ServerSettings, store: FaultyStore
) -> None:
    limits = TenantLimitSettings(api_per_minute=20)
    async with serve_api(build_app(guarded, Services.create(guarded, store, limits=limits))) as api:
        await _flood_and_check(api)


async def _flood_and_check(api: httpx.AsyncClient) -> None:
    statuses = [(await api.get("/v1/privacy", headers=read_auth("mallory"))).status_code for _ in range(25)]
    # 20 a minute: a burst of 5 at once, then one every 3 s; the flood gets the sustained rate.
    assert statuses[:5] == [200] * 5 and statuses.count(200) <= 6 and statuses[-1] == 429
    refused = await api.get("/v1/privacy", headers=read_auth("mallory"))
    assert int(refused.headers["retry-after"]) >= 1 and refused.json()["code"] == "rate_limited"
    assert (await api.get("/v1/privacy", headers=read_auth("bob"))).status_code == 200


def _ws_url(client: httpx.AsyncClient, path: str) -> str:
    return f"ws://127.0.0.1:{_port(client)}{path}"


async def test_websockets_authenticate_by_subprotocol_only(api: httpx.AsyncClient) -> None:
    token = issue_token(SECRET, "ann", "read")
    url = _ws_url(api, "/v1/assist/live")
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"{url}?token={token}"):
            pass
    assert refused.value.response.status_code == 403, "a token in the URL opens nothing"
    with pytest.raises(InvalidStatus):
        async with websockets.connect(url, origin="https://evil.example", subprotocols=_protocols(token)):  # type: ignore[arg-type]
            pass
    async with websockets.connect(url, subprotocols=_protocols(token)) as socket:  # type: ignore[arg-type]
        assert socket.subprotocol == "shadowdesk.v1"
        assert json.loads(await socket.recv())["type"] == "context"
        await socket.send(b"\x00\x01binary")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003


async def test_a_websocket_closes_when_its_token_expires(api: httpx.AsyncClient) -> None:
    token = issue_token(SECRET, "ann", "read", ttl_s=2)
    async with websockets.connect(_ws_url(api, "/v1/assist/live"), subprotocols=_protocols(token)) as socket:  # type: ignore[arg-type]
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        assert time.monotonic() - started < 5


async def test_a_websocket_closes_when_its_user_revokes_their_tokens(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_socket, "REVOCATION_CHECK_S", 0.2)
    token = issue_token(SECRET, "ann", "read", ttl_s=600)
    others = issue_token(SECRET, "bob", "read", ttl_s=600)
    async with (
        websockets.connect(_ws_url(api, "/v1/assist/live"), subprotocols=_protocols(token)) as socket,  # type: ignore[arg-type]
        websockets.connect(_ws_url(api, "/v1/assist/live"), subprotocols=_protocols(others)) as bobs,  # type: ignore[arg-type]
    ):
        await asyncio.sleep(0.5)  # open and checked a few times before the revocation
        assert (await api.post("/v1/auth/revoke", headers=manage_auth("ann"))).status_code == 200
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        assert closed.value.rcvd.reason == "token revoked"
        assert time.monotonic() - started < 5
        await bobs.ping()  # another user's socket stays open
        assert bobs.close_code is None


def _protocols(token: str) -> list[str]:
    return ["shadowdesk.v1", f"bearer.{token}"]
