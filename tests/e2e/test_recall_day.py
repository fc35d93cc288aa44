"""A scripted day at the desk, end to end: real apps on Xvfb, the real agent, server, MinIO and models.

Chromium pages, mousepad notes and xterm logs in English and Chinese are focused one after another
while the agent streams; the server OCRs, indexes and answers. Queries in both languages must find the
right moments, an ask over the history must cite the right moment (with the embedded model), and an
excluded window's content must be nowhere: not in search, not in the user's bucket.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from minio import Minio
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from bench.desk_day import ITEMS, QUERIES, focus_each, open_items, start_agent
from cloud_infer.auth import issue_token
from harness.chromium import chromium_argv
from harness.dbus import SessionBus
from harness.minio import MinioServer
from harness.processes import (
    TOKEN_SECRET,
    ServerProcess,
    minio_store_env,
    wait_until,
)
from recall_store.naming import user_bucket
from shadowdesk_common.desktop import VirtualDesktop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USER, SESSION = "day-user", "day-desk-1"
SECRET_TITLE = "secret-diary"
SECRET_WORD = "zebraumbrella"
TITLES = {item.key: item.title for item in ITEMS}


@pytest.fixture(scope="module")
def day(minio_server: MinioServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Runs the day once for the module: returns the server and a read token."""
    tmp = tmp_path_factory.mktemp("day")
    env = minio_store_env(minio_server.endpoint, minio_server.access_key, minio_server.secret_key)
    # The scripted evaluation searches far faster than a person; its user's search limit is raised.
    server = ServerProcess(env, tmp / "server.log", llm_backend="embedded", limit_search_per_minute="6000")
    server.start()
    try:
        with VirtualDesktop(width=1280, height=800) as desktop, SessionBus(desktop.env) as bus:
            app_env = {**bus.app_env, "XDG_CONFIG_HOME": str(tmp / "config")}
            windows = open_items(
                desktop, tmp / "docs", chromium_argv("about:blank", tmp / "chromium")[:-1], app_env
            )
            _, secret = desktop.launch_xterm(SECRET_TITLE)
            desktop.xdotool("windowactivate", "--sync", str(secret))
            desktop.xdotool("type", "--window", str(secret), f"echo {SECRET_WORD} plan\n")
            agent = start_agent(
                desktop,
                bus,
                server,
                (USER, SESSION),
                tmp,
                frame_interval_s="0.5",
                exclude_title_patterns=SECRET_TITLE,
            )
            read = issue_token(TOKEN_SECRET, user_id=USER, scope="read", ttl_s=3600)
            try:
                focus_each(desktop, {**windows, "secret": secret}, dwell_s=2.5)
                last = ITEMS[-1]
                wait_until(
                    lambda: (
                        _titles(server, read, last.lines[0])[:1] == [last.title]
                        or any(last.title in t for t in _titles(server, read, last.lines[0]))
                    ),
                    90,
                    f"the last item to be searchable (server log: {server.log()[-2000:]})",
                )
            finally:
                agent.terminate()
            yield {"server": server, "read": read}
    finally:
        server.terminate()


def _search(server: ServerProcess, token: str, q: str, **params: str) -> dict[str, Any]:
    reply = httpx.get(
        f"{server.http_url}/v1/recall/search",
        params={"q": q, "limit": "5", **params},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    reply.raise_for_status()
    body: dict[str, Any] = reply.json()
    return body


def _titles(server: ServerProcess, token: str, q: str) -> list[str]:
    return [hit["title"] for hit in _search(server, token, q)["hits"]]


def test_queries_in_both_languages_find_the_right_moment(day: dict[str, Any]) -> None:
    server, read = day["server"], day["read"]
    undated = [q for q in QUERIES if not q.when]
    found = 0
    misses = []
    for query in undated:
        titles = _titles(server, read, query.text)
        if any(TITLES[query.expected] in t for t in titles):
            found += 1
        else:
            misses.append((query.text, titles))
    # The benchmark reports the exact figure; the test guards against a broken pipeline.
    assert found / len(undated) >= 0.8, misses
    for text, key in [
        ("invoice INV-2041", "invoice"),
        ("报销金额", "expense"),
        ("kubectl rollout restart", "runbook"),
    ]:
        assert TITLES[key] in _titles(server, read, text)[0]


def test_hits_carry_snippet_time_app_and_boxed_frame(day: dict[str, Any]) -> None:
    hit = _search(day["server"], day["read"], "Acme invoice total")["hits"][0]
    assert hit["app_id"] == "chromium" and "Invoice INV-2041" in hit["title"]
    assert any(f["hit"] for f in hit["snippet"])
    screen_hits = [
        h for h in _search(day["server"], day["read"], "Total due 1,280.00")["hits"] if h["frame_url"]
    ]
    assert screen_hits and screen_hits[0]["boxes"], screen_hits
    frame = httpx.get(
        day["server"].http_url + screen_hits[0]["frame_url"],
        headers={"Authorization": f"Bearer {day['read']}"},
        timeout=10,
    )
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/webp"


def test_filters_by_app(day: dict[str, Any]) -> None:
    hits = _search(day["server"], day["read"], "budget", app="xterm")["hits"]
    assert hits and all(h["app_id"] == "xterm" for h in hits)
    assert _search(day["server"], day["read"], "budget", app="mousepad")["hits"] == [] or all(
        h["app_id"] == "mousepad"
        for h in _search(day["server"], day["read"], "budget", app="mousepad")["hits"]
    )


def test_excluded_window_is_nowhere(day: dict[str, Any], minio_server: MinioServer) -> None:
    assert _search(day["server"], day["read"], SECRET_WORD)["hits"] == []
    client = Minio(minio_server.endpoint, minio_server.access_key, minio_server.secret_key, secure=False)
    bucket = user_bucket(USER)
    for obj in client.list_objects(bucket, recursive=True):
        assert obj.object_name is not None
        data = client.get_object(bucket, obj.object_name).read()
        assert SECRET_WORD.encode() not in data and SECRET_TITLE.encode() not in data, obj.object_name


def test_other_users_find_nothing(day: dict[str, Any]) -> None:
    bob = issue_token(TOKEN_SECRET, user_id="bob-day", scope="read", ttl_s=3600)
    assert _search(day["server"], bob, "invoice")["hits"] == []


def test_ask_cites_the_right_moment(day: dict[str, Any]) -> None:
    url = day["server"].http_url.replace("http://", "ws://") + "/v1/recall/live"
    # No token in the URL: it is offered as a subprotocol beside the protocol the server accepts.
    offered = [Subprotocol("shadowdesk.v1"), Subprotocol(f"bearer.{day['read']}")]
    with connect(url, subprotocols=offered, open_timeout=10) as ws:
        assert ws.subprotocol == "shadowdesk.v1"
        ws.send(json.dumps({"type": "ask", "id": "q1", "question": "How much was the Acme invoice?"}))
        answer, done = "", None
        while done is None:
            message = json.loads(ws.recv(timeout=60))
            if message.get("id") != "q1":
                continue
            assert message["type"] != "answer.error", message
            if message["type"] == "answer.delta":
                answer += message["text"]
            elif message["type"] == "answer.done":
                done = message
    assert answer.strip()
    assert "Invoice INV-2041" in done["citations"][0]["title"]
