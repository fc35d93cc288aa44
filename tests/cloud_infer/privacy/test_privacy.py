"""Privacy controls on the cloud: redaction by the real ingest server into a real store, and /v1/privacy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from cloud_infer.app import build_app
from cloud_infer.config import ServerSettings
from cloud_infer.privacy.filter import PrivacyFilter
from cloud_infer.privacy.protocol import PrivacySettings
from cloud_infer.privacy.service import SETTINGS_KEY, PrivacyService
from cloud_infer.server import create_grpc_server, ingest_service
from cloud_infer.services import Services
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.event_log import EventLog
from tests.support.cloud import (
    NS,
    AgentStream,
    FaultyStore,
    focus,
    frame,
    ingest_token,
    metrics,
    now_ns,
    read_auth,
    serve_api,
)
from tests.support.ingest_server import IngestServer


@pytest.fixture
def privacy(store: FaultyStore) -> PrivacyService:
    return PrivacyService(store)


@pytest.fixture
async def ingest(
    settings: ServerSettings, store: FaultyStore, privacy: PrivacyService
) -> AsyncIterator[IngestServer]:
    """The ingest server as ``serve`` builds it: with the privacy filter over the shared service."""
    service = ingest_service(settings, store, privacy=PrivacyFilter(privacy, store))
    server, port = await create_grpc_server(settings, service)
    yield IngestServer(server, port, service)
    await server.stop(None)


def private_focus(seq: int, t_ns: int, window_id: int, title: str = "") -> pb.Event:
    event = focus(seq, t_ns, "chromium", title, window_id=window_id)
    event.window_focus.wm_class = "" if not title else event.window_focus.wm_class
    event.window_focus.private = True
    return event


def framed(seq: int, t_ns: int, window_id: int) -> pb.Event:
    event = frame(seq, t_ns)
    event.frame.window_id = window_id
    return event


def text(seq: int, t_ns: int, app_id: str, body: str, window_id: int = 7) -> pb.Event:
    return pb.Event(
        seq=seq,
        time_unix_nano=t_ns,
        text=pb.TextSnapshot(window_id=window_id, app_id=app_id, source="atspi", text=body),
    )


def app_started(seq: int, t_ns: int) -> pb.Event:
    return pb.Event(
        seq=seq,
        time_unix_nano=t_ns,
        app=pb.AppLifecycle(kind=pb.AppLifecycle.KIND_STARTED, app_id="xterm", pid=4),
    )


async def send(ingest: IngestServer, user: str, session: str, *batches: list[pb.Event]) -> list[int]:
    agent = AgentStream(ingest.target, ingest_token(user, session))
    try:
        await agent.open(user, session)
        return [await agent.ack(events) for events in batches]
    finally:
        await agent.close()


async def stored(store: FaultyStore, user: str, session: str, t0: int) -> dict[int, pb.Event]:
    """Every stored event of the session by seq, read back from the segments."""
    events = await EventLog(store).read(user, t0 - NS, t0 + 60 * NS)
    return {e.event.seq: e.event for e in events if e.session_id == session}


def kinds(events: dict[int, pb.Event]) -> dict[int, str | None]:
    return {seq: event.WhichOneof("kind") for seq, event in events.items()}


async def frame_keys(store: FaultyStore, user: str, session: str) -> list[str]:
    return await store.list_keys(user, f"frames/{session}/")


async def test_frames_of_a_private_window_or_while_it_has_focus_are_never_stored(
    ingest: IngestServer, store: FaultyStore, user: str, session: str
) -> None:
    t0 = now_ns()
    acks = await send(
        ingest,
        user,
        session,
        [focus(1, t0, title="notes", window_id=7), framed(2, t0 + 1, window_id=7)],
        # An old agent: private, but still sends the title; then a frame while it has focus.
        [
            private_focus(3, t0 + 2, window_id=9, title="Bank - Private Browsing"),
            framed(4, t0 + 3, window_id=7),
        ],
        [framed(5, t0 + 4, window_id=9), focus(6, t0 + 5, title="notes", window_id=7)],
        [framed(7, t0 + 6, window_id=7), framed(8, t0 + 7, window_id=9)],
    )
    assert acks == [2, 4, 6, 8], "redaction never changes what is acknowledged"

    assert await frame_keys(store, user, session) == [
        f"frames/{session}/000000000002.png",
        f"frames/{session}/000000000007.png",
    ]
    events = await stored(store, user, session, t0)
    assert kinds(events) == {
        1: "window_focus",
        2: "frame",
        3: "window_focus",
        4: None,
        5: None,
        6: "window_focus",
        7: "frame",
        8: None,  # window 9 is still private although it lost focus
    }
    hidden = events[3].window_focus
    assert (hidden.private, hidden.title, hidden.wm_class, hidden.window_id) == (True, "", "", 9)
    assert hidden.app_id == "chromium"
    assert events[4].time_unix_nano == t0 + 3, "a redacted event keeps its time"
    assert await EventLog(store).last_seq(user, session) == 8


async def test_server_side_exclusions_redact_focus_titles_text_and_frames(
    ingest: IngestServer, store: FaultyStore, privacy: PrivacyService, user: str, session: str
) -> None:
    await privacy.put(
        user, PrivacySettings(excluded_apps=["KeePassXC"], excluded_title_patterns=[r"\bbank\b"])
    )
    t0 = now_ns()
    await send(
        ingest,
        user,
        session,
        [
            text(1, t0, "keepassxc", "hunter2", window_id=3),
            text(2, t0 + 1, "xterm", "ls -l", window_id=7),
            focus(3, t0 + 2, "firefox", "My BANK - Mozilla Firefox", window_id=11),
            framed(4, t0 + 3, window_id=11),
            text(5, t0 + 4, "firefox", "balance: 1000", window_id=11),
            focus(6, t0 + 5, "keepassxc", "Passwords.kdbx", window_id=3),
            focus(7, t0 + 6, "xterm", "shell", window_id=7),
            framed(8, t0 + 7, window_id=7),
        ],
    )
    events = await stored(store, user, session, t0)
    assert kinds(events) == {
        1: None,
        2: "text",
        3: "window_focus",
        4: None,
        5: None,
        6: "window_focus",
        7: "window_focus",
        8: "frame",
    }
    assert events[2].text.text == "ls -l"
    for seq in (3, 6):
        assert events[seq].window_focus.private and events[seq].window_focus.title == ""
    assert events[7].window_focus.title == "shell" and not events[7].window_focus.private
    assert await frame_keys(store, user, session) == [f"frames/{session}/000000000008.png"]


async def test_pause_keeps_only_metrics_and_apps_and_resume_restores_capture(
    ingest: IngestServer, store: FaultyStore, privacy: PrivacyService, user: str, session: str
) -> None:
    other = "someone-else@example.com"
    await privacy.put(user, PrivacySettings(paused=True))
    t0 = now_ns()
    day = [
        focus(1, t0),
        frame(2, t0 + 1),
        metrics(3, t0 + 2),
        app_started(4, t0 + 3),
        text(5, t0 + 4, "xterm", "x"),
        # Ops events name processes and carry numbers, nothing seen on screen: diagnostics goes on.
        pb.Event(
            seq=6, time_unix_nano=t0 + 5, app_fault=pb.AppFault(app_id="xterm", pid=7, executable="xterm")
        ),
        pb.Event(seq=7, time_unix_nano=t0 + 6, session_info=pb.SessionInfo(hostname="desk-1")),
    ]
    assert await send(ingest, user, session, day) == [7]
    assert kinds(await stored(store, user, session, t0)) == {
        1: None,
        2: None,
        3: "metrics",
        4: "app",
        5: None,
        6: "app_fault",
        7: "session_info",
    }
    assert await frame_keys(store, user, session) == []
    # Another user's settings are their own: the same events are stored in full.
    assert await send(ingest, other, session, day) == [7]
    assert kinds(await stored(store, other, session, t0)) == {
        1: "window_focus",
        2: "frame",
        3: "metrics",
        4: "app",
        5: "text",
        6: "app_fault",
        7: "session_info",
    }

    await privacy.put(user, PrivacySettings(paused=False))
    assert await send(ingest, user, session, [focus(8, t0 + 7), frame(9, t0 + 8)]) == [9]
    events = await stored(store, user, session, t0)
    assert kinds(events)[8] == "window_focus" and kinds(events)[9] == "frame"
    assert await frame_keys(store, user, session) == [f"frames/{session}/000000000009.png"]


async def test_settings_are_stored_in_the_users_space_and_survive_a_new_service(
    store: FaultyStore, privacy: PrivacyService, user: str
) -> None:
    assert await privacy.get(user) == PrivacySettings()
    chosen = PrivacySettings(excluded_apps=["Bitwarden "], retention_days=None, retention_max_bytes=10**9)
    await privacy.put(user, chosen)
    assert chosen.excluded_apps == ["bitwarden"]
    assert await store.list_keys(user, "privacy/") == [SETTINGS_KEY]
    assert await PrivacyService(store).get(user) == chosen
    assert await PrivacyService(store).get("nobody@example.com") == PrivacySettings()


def test_settings_validation_bounds_patterns_and_rejects_bad_regexes() -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        PrivacySettings(excluded_title_patterns=["(unclosed"])
    with pytest.raises(ValueError):
        PrivacySettings(excluded_title_patterns=["x" * 201])
    with pytest.raises(ValueError):
        PrivacySettings(excluded_title_patterns=["a"] * 51)
    with pytest.raises(ValueError):
        PrivacySettings(retention_days=0)
    assert PrivacySettings().retention_days == 90 and PrivacySettings().retention_max_bytes is None


@pytest.fixture
async def api(
    settings: ServerSettings, store: FaultyStore, privacy: PrivacyService
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_api(build_app(settings, Services.create(settings, store, privacy=privacy))) as client:
        yield client


async def test_privacy_api_get_put_validation_and_isolation(
    api: httpx.AsyncClient, ingest: IngestServer, store: FaultyStore, user: str, session: str
) -> None:
    reply = await api.get("/v1/privacy", headers=read_auth(user))
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "paused": False,
        "excluded_apps": [],
        "excluded_title_patterns": [],
        "retention_days": 90,
        "retention_max_bytes": None,
    }
    body = {"paused": True, "excluded_apps": ["1Password"], "excluded_title_patterns": ["无痕"]}
    reply = await api.put("/v1/privacy", json=body, headers=read_auth(user))
    assert reply.status_code == 200, reply.text
    assert reply.json()["excluded_apps"] == ["1password"]
    assert (await api.get("/v1/privacy", headers=read_auth(user))).json()["paused"] is True

    bad = await api.put("/v1/privacy", json={"excluded_title_patterns": ["(["]}, headers=read_auth(user))
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_argument" and "invalid regular expression" in bad.json()["message"]
    assert set(bad.json()) == {"code", "message"}
    unknown = await api.put("/v1/privacy", json={"pause": True}, headers=read_auth(user))
    assert unknown.status_code == 400
    assert (await api.get("/v1/privacy", headers=read_auth(user))).json()["paused"] is True, "unchanged"

    # Another user's token reads and writes only its own settings.
    intruder = read_auth("mallory@example.com")
    assert (await api.get("/v1/privacy", headers=intruder)).json()["paused"] is False
    assert (await api.put("/v1/privacy", json={"paused": False}, headers=intruder)).status_code == 200
    assert (await api.get("/v1/privacy", headers=read_auth(user))).json()["paused"] is True
    no_token = await api.get("/v1/privacy")
    assert no_token.status_code == 401 and no_token.json()["code"] == "unauthenticated"
    ingest_scoped = {"Authorization": f"Bearer {ingest_token(user, session)}"}
    assert (await api.put("/v1/privacy", json={}, headers=ingest_scoped)).status_code == 401

    # The API and ingest share one service: the pause set above applies to the next batch.
    t0 = now_ns()
    assert await send(ingest, user, session, [focus(1, t0), metrics(2, t0 + 1)]) == [2]
    assert kinds(await stored(store, user, session, t0)) == {1: None, 2: "metrics"}


async def test_a_catastrophic_pattern_runs_in_linear_time_and_stalls_nobody(
    api: httpx.AsyncClient, ingest: IngestServer, store: FaultyStore, user: str, session: str
) -> None:
    """3f6b07e: `(a+)+$` on a 2,000-character title held the event loop for 11.8 s."""
    evil = {"excluded_title_patterns": ["(a+)+$", "(x+x+)+y"]}
    assert (await api.put("/v1/privacy", json=evil, headers=read_auth(user))).status_code == 200
    t0 = now_ns()
    title = "a" * 2000 + "!"
    started = time.perf_counter()
    ack, timeline = await asyncio.gather(
        send(ingest, user, session, [focus(i, t0 + i, title=title) for i in range(1, 41)]),
        api.get("/v1/timeline", headers=read_auth("bystander@example.com")),
    )
    assert ack == [40] and timeline.status_code == 200
    assert time.perf_counter() - started < 2.0, "forty 2,000-character titles against the patterns"
    assert kinds(await stored(store, user, session, t0))[1] == "window_focus"


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=secret)", r"(?<!x)y", r"a{1001}"])
async def test_patterns_without_a_linear_time_match_are_refused_with_400(
    api: httpx.AsyncClient, user: str, pattern: str
) -> None:
    reply = await api.put("/v1/privacy", json={"excluded_title_patterns": [pattern]}, headers=read_auth(user))
    assert reply.status_code == 400
    assert reply.json()["code"] == "invalid_argument" and "RE2" in reply.json()["message"]


async def test_exclusions_hold_across_a_restart_and_unknown_focus_fails_closed(
    settings: ServerSettings, store: FaultyStore, privacy: PrivacyService, user: str, session: str
) -> None:
    """3f6b07e: a frame of an excluded app was stored after a restart (focus lived in memory only)."""
    await privacy.put(user, PrivacySettings(excluded_apps=["keepassxc"]))
    t0 = now_ns()

    async def restarted_ingest() -> IngestServer:
        service = ingest_service(settings, store, privacy=PrivacyFilter(PrivacyService(store), store))
        server, port = await create_grpc_server(settings, service)
        return IngestServer(server, port, service)

    first = await restarted_ingest()
    vault = focus(1, t0, app_id="keepassxc", title="Passwords - KeePassXC", window_id=9)
    assert await send(first, user, session, [vault, framed(2, t0 + 1, window_id=9)]) == [2]
    await first.server.stop(None)

    # A new process (fresh memory) gets frames of the still-focused vault, with no new focus event.
    second = await restarted_ingest()
    assert await send(second, user, session, [framed(3, t0 + 2, window_id=9)]) == [3]
    await second.server.stop(None)
    assert await frame_keys(store, user, session) == []

    # A resumed session whose saved focus is gone fails closed until a focus event says what has focus.
    await store.delete(user, [f"privacy/sessions/{session}.json"])
    third = await restarted_ingest()
    acks = await send(
        third,
        user,
        session,
        [framed(4, t0 + 3, window_id=7), text(5, t0 + 4, "mousepad", "hidden?")],
        [focus(6, t0 + 5, title="notes", window_id=7), framed(7, t0 + 6, window_id=7)],
    )
    await third.server.stop(None)
    assert acks == [5, 7]
    assert kinds(await stored(store, user, session, t0)) == {
        1: "window_focus",
        2: None,
        3: None,
        4: None,
        5: None,
        6: "window_focus",
        7: "frame",
    }
    assert await frame_keys(store, user, session) == [f"frames/{session}/000000000007.png"]
