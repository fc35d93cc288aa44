"""Revocation on gRPC: ``POST /v1/auth/revoke`` ends the caller's ingest tokens issued until then.

The ingest server and the HTTP API share one ``Revocations`` as ``serve`` wires them, so this process
sees a revocation at once (other processes within its cache time, docs/security.md "Known limits").
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import grpc
import httpx
import pytest

from cloud_infer.app import build_app
from cloud_infer.config import ServerSettings
from cloud_infer.revocation import Revocations
from cloud_infer.server import create_grpc_server, ingest_service
from cloud_infer.services import Services
from tests.support.cloud import (
    NS,
    AgentStream,
    FaultyStore,
    batch,
    hello,
    ingest_token,
    manage_auth,
    metrics,
    now_ns,
    serve_api,
    wait_for,
)


@dataclass
class Cloud:
    target: str  # the gRPC ingest server
    api: httpx.AsyncClient  # the HTTP API


@pytest.fixture
async def cloud(settings: ServerSettings, store: FaultyStore) -> AsyncIterator[Cloud]:
    revocations = Revocations(store)
    server, port = await create_grpc_server(settings, ingest_service(settings, store), revocations)
    try:
        services = Services.create(settings, store, revocations=revocations)
        async with serve_api(build_app(settings, services)) as api:
            yield Cloud(f"127.0.0.1:{port}", api)
    finally:
        await server.stop(None)


async def test_a_revoked_ingest_token_is_refused_and_a_later_one_accepted(
    cloud: Cloud, user: str, session: str
) -> None:
    t0 = now_ns()
    earlier = ingest_token(user, session)
    open_before = AgentStream(cloud.target, earlier)
    try:
        await open_before.open(user, session)
        assert await open_before.ack([metrics(1, t0)]) == 1

        revoked = await cloud.api.post("/v1/auth/revoke", headers=manage_auth(user))
        assert revoked.status_code == 200, revoked.text

        # A stream opened before the revocation ends at its next batch, which is not stored.
        code, details = await open_before.status(batch([metrics(2, t0 + NS)]))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "revoked" in details, (code, details)
    finally:
        await open_before.close()

    refused = AgentStream(cloud.target, earlier)
    try:
        code, details = await refused.status(hello(user, session))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "revoked" in details, (code, details)
    finally:
        await refused.close()

    other = f"other-{user}"
    unaffected = AgentStream(cloud.target, ingest_token(other, session))
    try:
        await unaffected.open(other, session)
        assert await unaffected.ack([metrics(1, t0)]) == 1, "only the caller's tokens are revoked"
    finally:
        await unaffected.close()

    # A token issued in the revoked second is revoked too (``iat`` has one-second precision).
    revoked_before = datetime.fromisoformat(revoked.json()["revoked_before"]).timestamp()
    await wait_for(lambda: time.time() >= revoked_before, timeout_s=3)
    later = AgentStream(cloud.target, ingest_token(user, session))
    try:
        welcome = await later.open(user, session)
        assert welcome.acked_seq == 1, "the batch sent on the revoked stream was not stored"
        assert await later.ack([metrics(2, t0 + NS)]) == 2
    finally:
        await later.close()
