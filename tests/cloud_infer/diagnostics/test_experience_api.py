"""``POST /v1/desktop/{session_id}/experience`` and ``WS /v1/desktop/echo`` on a real server, with a real
agent's session: a report of the caller's own desktop reaches the fleet view; another user's session,
an unknown one, a read-only token, a malformed, out-of-range, oversized or too frequent report are
refused; the echo answers text straight back and refuses what is not a short text."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets

from cloud_infer.auth import issue_token
from cloud_infer.config import ServerSettings
from cloud_infer.desktop.config import DesktopSettings
from cloud_infer.diagnostics.service import pseudonym, pseudonym_key
from tests.support.cloud import SECRET, FaultyStore, manage_auth, read_auth
from tests.support.diagnostics_desk import Desk, open_desk

REPORT = {
    "window_s": 5.0,
    "fps": 18.5,
    "bytes_down_per_s": 250_000,
    "bytes_up_per_s": 1_200,
    "inputs": 12,
    "rtt_ms": 14.2,
    "frame_delay_ms": 55.0,
    "input_latency_ms": 61.5,
}
VIEWER = {"Authorization": f"Bearer {issue_token(SECRET, 'view-1', ['read', 'ops_view'])}"}


@pytest.fixture
async def desk(settings: ServerSettings, store: FaultyStore, user: str, session: str) -> AsyncIterator[Desk]:
    desktops = DesktopSettings(
        endpoints={
            f"{user}/{session}": "unix:/nonexistent/rfb.sock",
            "someone-else/theirs": "unix:/x/rfb.sock",
        }
    )
    async with open_desk(settings, store, user, session, desktop=desktops) as opened:
        await opened.report(1, 40.0)  # the session's agent has reported: the fleet view lists it
        yield opened


def path(session: str) -> str:
    return f"/v1/desktop/{session}/experience"


async def test_a_report_of_the_callers_own_desktop_reaches_the_fleet_view(desk: Desk) -> None:
    user, session = desk.agent.user, desk.agent.session
    reply = await desk.api.post(path(session), json=REPORT, headers=manage_auth(user))
    assert (reply.status_code, reply.content) == (204, b"")
    subject = pseudonym(pseudonym_key(SECRET), user, session)
    (listed,) = (await desk.api.get("/v1/ops/sessions", headers=VIEWER)).json()["sessions"]
    assert listed["subject"] == subject
    assert listed["experience"] == {**{k: float(v) for k, v in REPORT.items()}, "lag_ms": 61.5}
    assert listed["last_experience_ns"] > 0
    series = (await desk.api.get(f"/v1/ops/sessions/{subject}/series", headers=VIEWER)).json()
    assert series["experience"]["rtt_ms"] == [14.2]


async def test_another_users_session_an_unknown_one_and_a_read_only_token_are_refused(desk: Desk) -> None:
    user, session = desk.agent.user, desk.agent.session
    theirs = await desk.api.post(path("theirs"), json=REPORT, headers=manage_auth(user))
    assert (theirs.status_code, theirs.json()["code"]) == (403, "permission_denied")
    # Another user with alice's session id: it is not theirs.
    intruder = await desk.api.post(path(session), json=REPORT, headers=manage_auth("mallory"))
    assert intruder.status_code == 403
    unknown = await desk.api.post(path("no-such-desk"), json=REPORT, headers=manage_auth(user))
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    read_only = await desk.api.post(path(session), json=REPORT, headers=read_auth(user))
    assert read_only.status_code == 403
    assert (await desk.api.post(path(session), json=REPORT)).status_code == 401
    series = desk.diagnostics.series(pseudonym(pseudonym_key(SECRET), user, session))
    assert series is not None and series.experience == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({**REPORT, "rtt_ms": -3}, 400),
        ({**REPORT, "input_latency_ms": 1e9}, 400),
        ({**REPORT, "fps": "fast"}, 400),
        ({**REPORT, "window_title": "Inbox"}, 400),
        ({k: v for k, v in REPORT.items() if k != "window_s"}, 400),
        ([REPORT], 400),
        ({**REPORT, "rtt_ms": 1, "padding": "x" * 3000}, 413),
    ],
)
async def test_a_malformed_out_of_range_or_oversized_report_is_refused(
    desk: Desk, body: Any, status: int
) -> None:
    reply = await desk.api.post(path(desk.agent.session), json=body, headers=manage_auth(desk.agent.user))
    assert reply.status_code == status, reply.text
    raw = await desk.api.post(
        path(desk.agent.session),
        content=b'{"window_s": 5, "fps": NaN',
        headers={**manage_auth(desk.agent.user), "content-type": "application/json"},
    )
    assert raw.status_code == 400


async def test_reports_past_the_rate_are_refused_with_retry_after(desk: Desk) -> None:
    auth = manage_auth(desk.agent.user)
    statuses = [(await desk.api.post(path(desk.agent.session), json=REPORT, headers=auth)) for _ in range(8)]
    assert [r.status_code for r in statuses[:5]] == [204] * 5  # a burst of 5, then 30 a minute
    refused = [r for r in statuses if r.status_code == 429]
    assert refused and float(refused[0].headers["retry-after"]) > 0


async def test_the_echo_answers_text_at_once_and_refuses_anything_else(desk: Desk) -> None:
    url = str(desk.api.base_url).replace("http://", "ws://") + "/v1/desktop/echo"
    token = issue_token(SECRET, desk.agent.user, "read")
    protocols: Any = ["shadowdesk.v1", f"bearer.{token}"]
    async with websockets.connect(url, subprotocols=protocols) as socket:
        for text in ("1", "2", json.dumps({"t": 3})):
            await socket.send(text)
            assert await socket.recv() == text
        await socket.send("x" * 65)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    async with websockets.connect(url, subprotocols=protocols) as socket:
        await socket.send(b"\x01")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(url, subprotocols=["shadowdesk.v1"]):
            pass
