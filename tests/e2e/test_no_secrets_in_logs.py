"""No token and no screen text in the server's log or its OpenTelemetry console export.

3f6b07e logged websocket URLs with ``?token=…`` at INFO. Here a real server (console exporter for
traces, metrics and logs) ingests a screen with a canary on it, is searched for the canary, asked
about it over the websocket, and is sent the token every way a client might (header, subprotocol,
and the old ``?token=`` in an HTTP and a websocket URL, which are refused); then the whole log is
grepped for the token, the login ticket and the canary.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from cloud_infer.auth import issue_token
from harness.processes import TOKEN_SECRET, ServerProcess, wait_until
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.cloud import AgentStream
from tests.support.screens import screen

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USER, SESSION = "carol-logs", "carol-desk"
CANARY = "Zq7Canary4419"
NS = 1_000_000_000


async def _ingest(address: str) -> None:
    t = time.time_ns() - 60 * NS
    focus = pb.WindowFocus(window_id=3, app_id="mousepad", wm_class="mousepad", title=f"Notes {CANARY}")
    text = pb.TextSnapshot(window_id=3, app_id="mousepad", source="atspi", text=f"the code is {CANARY}")
    frame = pb.ScreenFrame(
        image=screen([f"code {CANARY}"]), mime_type="image/webp", width=1024, height=640, window_id=3
    )
    agent = AgentStream(address, issue_token(TOKEN_SECRET, USER, "ingest", session_id=SESSION))
    try:
        await agent.open(USER, SESSION)
        events = [
            pb.Event(seq=1, time_unix_nano=t, window_focus=focus),
            pb.Event(seq=2, time_unix_nano=t + NS, text=text),
            pb.Event(seq=3, time_unix_nano=t + 2 * NS, frame=frame),
        ]
        assert await agent.ack(events) == 3
    finally:
        await agent.close()


def test_tokens_and_screen_text_never_reach_the_log_or_the_telemetry(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(tmp_path / "store")}
    server = ServerProcess(
        {**store, "SHADOWDESK_OTEL_EXPORTER": "console", "SHADOWDESK_OTEL_METRIC_INTERVAL_S": "1"},
        log,
        otel_log_level="DEBUG",
    )
    server.start(timeout_s=60)
    ticket = issue_token(TOKEN_SECRET, USER, "login", grants=["read", "manage"])
    try:
        asyncio.run(_ingest(server.grpc_address))
        with httpx.Client(base_url=server.http_url, timeout=60) as client:
            token = client.post("/v1/auth/session", json={"ticket": ticket}).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}

            def found() -> bool:
                hits = client.get("/v1/recall/search", params={"q": CANARY}, headers=auth).json()["hits"]
                return any(CANARY in hit["title"] for hit in hits)

            wait_until(found, 90, "the canary indexed", interval_s=1)  # searches: 120 a minute
            assert client.get("/v1/timeline", headers=auth).status_code == 200
            assert client.get("/v1/privacy", params={"token": token}).status_code == 401
            asyncio.run(_ask_and_misuse(server.http_url.replace("http://", "ws://"), token))
    finally:
        server.terminate()
    text = log.read_text(errors="replace")
    assert '"name": "ingest.batch"' in text, "the console exporter wrote spans"
    assert "shadowdesk.ingest.events" in text, "and metrics"
    assert "/v1/recall/search" in text, "and the access log"
    signature = token.rsplit(".", 1)[1]
    for secret in (token, signature, ticket, ticket.rsplit(".", 1)[1]):
        assert secret not in text
    assert CANARY not in text and CANARY.lower() not in text


async def _ask_and_misuse(ws_base: str, token: str) -> None:
    url = f"{ws_base}/v1/recall/live"
    async with websockets.connect(url, subprotocols=["shadowdesk.v1", f"bearer.{token}"]) as socket:  # type: ignore[list-item]
        await socket.send(json.dumps({"type": "ask", "id": "1", "question": f"what is {CANARY}?"}))
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), 120))
            if message.get("id") == "1" and message["type"] in ("answer.done", "answer.error"):
                break
    with pytest.raises(InvalidStatus):
        async with websockets.connect(f"{url}?token={token}"):
            pass
