"""A real X11 desktop streams through the real agent and server into real MinIO, and reads back.

The desktop runs openbox with two xterms and a Chromium window; the test switches focus with xdotool
while the agent streams, then reads the user's timeline through the HTTP API and checks the objects in
that user's MinIO bucket directly.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from minio import Minio
from PIL import Image

from cloud_infer.auth import issue_token
from harness.chromium import chromium_argv
from harness.minio import MinioServer
from harness.processes import (
    TOKEN_SECRET,
    ServerProcess,
    ShadowdeskProcess,
    agent_env,
    minio_store_env,
    wait_until,
)
from recall_store.naming import user_bucket
from shadowdesk_common.desktop import VirtualDesktop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def server(minio_server: MinioServer, tmp_path: Path) -> Iterator[ServerProcess]:
    env = minio_store_env(minio_server.endpoint, minio_server.access_key, minio_server.secret_key)
    process = ServerProcess(env, tmp_path / "server.log")
    process.start()
    yield process
    process.terminate()


@pytest.fixture
def desktop() -> Iterator[VirtualDesktop]:
    with VirtualDesktop() as running:
        yield running


def _timeline(server: ServerProcess, token: str) -> dict[str, Any]:
    """The user's last hour; a 429 (timeline reads are limited per user a minute) waits as it asks."""
    for _ in range(5):
        now = datetime.now(UTC)
        response = httpx.get(
            f"{server.http_url}/v1/timeline",
            params={
                "start": (now - timedelta(hours=1)).isoformat(),
                "end": (now + timedelta(minutes=5)).isoformat(),
            },
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        if response.status_code != 429:
            break
        time.sleep(min(10.0, float(response.headers.get("retry-after", "1"))))
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def test_desktop_history_reaches_minio_in_the_users_space_only(
    server: ServerProcess, desktop: VirtualDesktop, minio_server: MinioServer, tmp_path: Path
) -> None:
    page = tmp_path / "invoice.html"
    page.write_text(
        "<title>Invoice 2291 - Shadowdesk test</title>"
        "<h1 style='font-size:64px'>Invoice 2291: 4,210.00 EUR</h1>"
    )
    _, notes = desktop.launch_xterm("Alpha notes")
    _, shell = desktop.launch_xterm("Beta shell")
    desktop.launch(chromium_argv(f"file://{page}", tmp_path / "chromium"))
    browser = desktop.wait_for_window("Invoice 2291 - Shadowdesk test - Chromium", timeout_s=60)
    desktop.activate(notes)

    user, session = "alice-e2e", "alice-desk-1"
    agent = ShadowdeskProcess(
        "agent",
        {
            "DISPLAY": desktop.display,
            **agent_env(
                server,
                issue_token(TOKEN_SECRET, user_id=user, scope="ingest", session_id=session, ttl_s=3600),
                user,
                session,
                tmp_path / "spool.sqlite3",
                frame_interval_s="0.3",
                metrics_interval_s="1",
                flush_interval_s="0.1",
            ),
        },
        tmp_path / "agent.log",
    )
    agent.start()
    read_token = issue_token(TOKEN_SECRET, user_id=user, scope="read", ttl_s=3600)
    try:
        wanted = ["Alpha notes", "Beta shell", "Invoice 2291", "Alpha notes"]
        for window, title in zip([notes, shell, browser, notes], wanted, strict=True):
            desktop.activate(window)
            wait_until(
                lambda title=title: any(
                    title in s["title"] and s["frames"] for s in _timeline(server, read_token)["spans"]
                ),
                60,
                f"a span of {title!r} with a frame in the timeline (agent log: {agent.log()[-1500:]})",
                interval_s=1.0,
            )
        # The second "Alpha notes" is not proven by the wait above (the first span already matched).
        wait_until(
            lambda: _order(_timeline(server, read_token)["spans"], wanted)[-4:] == wanted,
            60,
            "the focus order in the timeline",
            interval_s=1.0,
        )
        spans = _timeline(server, read_token)["spans"]
    finally:
        agent.terminate()

    # Focus order is kept: alpha, beta, the invoice page, alpha again.
    assert _order(spans, wanted)[-4:] == wanted, [span["title"] for span in spans]
    apps = {span["app_id"] for span in spans}
    assert {"xterm", "chromium"} <= apps, apps
    assert all(span["session_id"] == session for span in spans)

    invoice_span = next(span for span in spans if "Invoice 2291" in span["title"])
    frame = httpx.get(
        server.http_url + invoice_span["frames"][0]["url"],
        headers={"Authorization": f"Bearer {read_token}"},
        timeout=10,
    )
    assert frame.status_code == 200
    image = Image.open(io.BytesIO(frame.content))
    assert image.size == (invoice_span["frames"][0]["width"], invoice_span["frames"][0]["height"])

    # In MinIO: alice's bucket holds event segments and frames; nobody else's space got anything.
    client = Minio(minio_server.endpoint, minio_server.access_key, minio_server.secret_key, secure=False)
    keys = [obj.object_name for obj in client.list_objects(user_bucket(user), recursive=True)]
    assert any(key.startswith(f"events/{session}/") for key in keys), keys
    assert any(key.startswith(f"frames/{session}/") for key in keys), keys
    assert not client.bucket_exists(user_bucket("bob-e2e"))

    # Another user's token sees nothing of alice, and cannot fetch her frames.
    bob = issue_token(TOKEN_SECRET, user_id="bob-e2e", scope="read", ttl_s=3600)
    assert _timeline(server, bob)["spans"] == []
    stolen = httpx.get(
        server.http_url + invoice_span["frames"][0]["url"],
        headers={"Authorization": f"Bearer {bob}"},
        timeout=10,
    )
    assert stolen.status_code == 404
    # And an ingest token is no read token.
    ingest = issue_token(TOKEN_SECRET, user_id=user, scope="ingest", session_id=session, ttl_s=3600)
    refused = httpx.get(
        f"{server.http_url}/v1/timeline",
        params={"start": "0", "end": str(int(datetime.now(UTC).timestamp()))},
        headers={"Authorization": f"Bearer {ingest}"},
        timeout=10,
    )
    assert refused.status_code in (401, 403)


def _order(spans: list[dict[str, Any]], wanted: list[str]) -> list[str]:
    titles = [span["title"] for span in spans]
    return [next(t for t in wanted if t in title) for title in titles if any(t in title for t in wanted)]
