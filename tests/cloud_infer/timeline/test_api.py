"""The HTTP read API on a real uvicorn (free port), fed through real gRPC ingest."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from PIL import Image

from cloud_infer.app import build_app
from cloud_infer.config import ServerSettings
from cloud_infer.services import Services
from tests.support.cloud import (
    NS,
    AgentStream,
    FaultyStore,
    focus,
    frame,
    ingest_token,
    metrics,
    now_ns,
    png,
    read_auth,
    serve_api,
)
from tests.support.ingest_server import IngestServer

HTTP_TIMEOUT = httpx.Timeout(10.0)


@pytest.fixture
async def api(settings: ServerSettings, store: FaultyStore) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_api(build_app(settings, Services.create(settings, store))) as client:
        yield client


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, tz=UTC).isoformat()


async def ingest_day(ingest: IngestServer, user: str, session: str, t0: int) -> bytes:
    """xterm focused at t0 (a frame at t0+1s), chromium at t0+3s (a frame at t0+4s), last event t0+5s."""
    first_image = png(color=(10, 200, 10))
    agent = AgentStream(ingest.target, ingest_token(user, session))
    await agent.open(user, session)
    await agent.ack([focus(1, t0, "xterm", "bash"), frame(2, t0 + NS, first_image), metrics(3, t0 + 2 * NS)])
    await agent.ack([focus(4, t0 + 3 * NS, "chromium", "Docs", window_id=9), frame(5, t0 + 4 * NS)])
    await agent.ack([metrics(6, t0 + 5 * NS)])
    await agent.close()
    return first_image


async def test_timeline_spans_and_frames_of_the_token_user(
    api: httpx.AsyncClient, ingest: IngestServer, user: str, session: str
) -> None:
    t0 = now_ns() - 60 * NS
    first_image = await ingest_day(ingest, user, session, t0)

    reply = await api.get(
        "/v1/timeline", params={"start": iso(t0 - NS), "end": iso(t0 + 10 * NS)}, headers=read_auth(user)
    )
    assert reply.status_code == 200, reply.text
    spans = reply.json()["spans"]
    assert [(s["app_id"], s["title"], s["session_id"]) for s in spans] == [
        ("xterm", "bash", session),
        ("chromium", "Docs", session),
    ]
    assert datetime.fromisoformat(spans[0]["end"]) == datetime.fromisoformat(spans[1]["start"])
    assert datetime.fromisoformat(spans[1]["end"]).timestamp() == pytest.approx((t0 + 5 * NS) / NS, abs=1e-3)
    assert [len(s["frames"]) for s in spans] == [1, 1]
    first_frame = spans[0]["frames"][0]
    assert first_frame["url"] == f"/v1/frames/{session}/000000000002.png"
    assert (first_frame["width"], first_frame["height"]) == (64, 48)

    image = await api.get(first_frame["url"], headers=read_auth(user))
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content == first_image

    thumb = await api.get(first_frame["thumbnail_url"], headers=read_auth(user))
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as decoded:
        assert decoded.format == "JPEG" and max(decoded.size) <= 320

    # Epoch seconds work too, and the window filters: only the chromium span starts inside it.
    later = await api.get(
        "/v1/timeline",
        params={"start": str((t0 + 2.5 * NS) / NS), "end": str((t0 + 9 * NS) / NS)},
        headers=read_auth(user),
    )
    assert [s["app_id"] for s in later.json()["spans"]] == ["chromium"]


async def test_another_users_token_sees_nothing_of_it(
    api: httpx.AsyncClient, ingest: IngestServer, user: str, session: str
) -> None:
    t0 = now_ns() - 60 * NS
    await ingest_day(ingest, user, session, t0)
    intruder = read_auth("mallory@example.com")
    reply = await api.get(
        "/v1/timeline", params={"start": iso(t0), "end": iso(t0 + 10 * NS)}, headers=intruder
    )
    assert reply.status_code == 200 and reply.json()["spans"] == []
    stolen = await api.get(f"/v1/frames/{session}/000000000002.png", headers=intruder)
    assert stolen.status_code == 404
    assert stolen.json() == {"code": "not_found", "message": "no such frame"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing authorization"),
        ({"Authorization": "Basic abc"}, "Bearer"),
        ({"Authorization": f"Bearer {ingest_token('ann', 'desk-1')}"}, "Audience"),
        ({"Authorization": "Bearer nope"}, "invalid token"),
    ],
)
async def test_requests_without_a_read_token_get_401(
    api: httpx.AsyncClient, headers: dict[str, str], message: str
) -> None:
    for path in ("/v1/timeline?start=0&end=10", "/v1/frames/desk-1/000000000001.png"):
        reply = await api.get(path, headers=headers)
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"] == "Bearer"
        assert reply.json()["code"] == "unauthenticated"
        assert message in reply.json()["message"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v1/timeline?start=yesterday&end=10", "start must be ISO-8601"),
        ("/v1/timeline?start=10&end=5", "start must be before end"),
        ("/v1/timeline?start=0&end=99999999", "at most 31 days"),
        ("/v1/timeline?end=now", "end must be ISO-8601"),
        ("/v1/frames/desk-1/..secret.png", "frame name"),
        ("/v1/frames/..desk/000000000001.png", "session id"),
        ("/v1/frames/desk-1/evil.exe", "frame name"),
    ],
)
async def test_bad_requests_get_one_error_shape(api: httpx.AsyncClient, path: str, message: str) -> None:
    reply = await api.get(path, headers=read_auth("ann"))
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert set(body) == {"code", "message"} and body["code"] == "invalid_argument"
    assert message in body["message"]


async def test_health_follows_the_store(api: httpx.AsyncClient, store: FaultyStore) -> None:
    assert (await api.get("/health")).json() == {"status": "ok"}
    store.down = True
    reply = await api.get("/health")
    assert reply.status_code == 503
    assert reply.json()["code"] == "unavailable"
    store.down = False
    assert (await api.get("/health")).status_code == 200


async def test_unknown_route_uses_the_error_shape(api: httpx.AsyncClient) -> None:
    reply = await api.get("/v1/nothing-here", headers=read_auth("ann"))
    assert reply.status_code == 404
    assert reply.json()["code"] == "not_found"
    # Without a token even the API's shape stays hidden: 401 before any routing.
    assert (await api.get("/v1/nothing-here")).status_code == 401


@pytest.mark.parametrize(
    ("size", "color_type", "bit_depth"),
    [
        # The reported bomb: 144 MP of 1-bit grey in ~18 KB.
        pytest.param((12000, 12000), 0, 1, id="12000x12000-grey"),
        # RGB under Pillow's own 89 MP warning, which the old code decoded whole (+250 MB).
        pytest.param((8000, 8000), 2, 8, id="8000x8000-rgb"),
    ],
)
async def test_thumbnail_of_a_stored_bomb_is_refused_before_any_decode(
    size: tuple[int, int],
    color_type: int,
    bit_depth: int,
    api: httpx.AsyncClient,
    store: FaultyStore,
    user: str,
    session: str,
) -> None:
    import threading
    import time

    import psutil

    from tests.support.images import png_bomb

    # Written straight into the store, as a server without the ingest check would have kept it.
    bomb = png_bomb(*size, color_type=color_type, bit_depth=bit_depth)
    await store.put(user, f"frames/{session}/000000000002.png", bomb, "image/png")
    process = psutil.Process()
    before = peak = process.memory_info().rss
    done = threading.Event()

    def sample_rss() -> None:  # the peak: a decode's memory is freed again before the reply
        nonlocal peak
        while not done.wait(0.002):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample_rss)
    sampler.start()
    started = time.monotonic()
    try:
        reply = await api.get(
            f"/v1/frames/{session}/000000000002.png", params={"thumb": "true"}, headers=read_auth(user)
        )
    finally:
        done.set()
        sampler.join()
    elapsed = time.monotonic() - started
    growth_mb = (max(peak, process.memory_info().rss) - before) / 2**20

    assert reply.status_code == 400, f"{reply.status_code} after {elapsed:.1f}s, RSS grew {growth_mb:.0f} MB"
    body = reply.json()
    assert body["code"] == "invalid_argument"
    width, height = size
    assert (
        f"{width}x{height} = {width * height} pixels, more than max_frame_pixels=16777216" in body["message"]
    )
    assert growth_mb < 100, f"RSS grew by {growth_mb:.0f} MB"
    assert elapsed < 5, f"took {elapsed:.1f}s"
