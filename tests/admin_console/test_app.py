"""The console's own front door, in process: sign-in against the real argon2 user store, the session
cookie's attributes, what a request that changes something must be (JSON, this origin), the websocket's
cookie authentication, signing out, and that only ops routes pass through to the cloud.

The cloud is not needed for any of it (nothing here reaches it); tests/e2e/test_admin_console.py runs
the console against the real cloud server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from admin_console.app import build_app
from admin_console.config import ConsoleSettings
from admin_console.identity import LocalUsers, add_user
from admin_console.sessions import COOKIE

BASE = "http://testserver"


@pytest.fixture
def console(tmp_path: Path) -> Iterator[TestClient]:
    users = tmp_path / "users.json"
    add_user(users, "ada", "admin", "correct horse")
    add_user(users, "vic", "viewer", "battery staple")
    settings = ConsoleSettings(
        users_file=users,
        service_token_file=tmp_path / "no-token",
        session_secret="a-test-session-secret-of-32-chars-at-least",
        cloud_url="http://127.0.0.1:9",
    )
    with TestClient(build_app(settings), base_url=BASE) as client:
        yield client


def sign_in(client: TestClient, username: str, password: str) -> int:
    return client.post("/api/login", json={"username": username, "password": password}).status_code


def test_the_user_store_keeps_argon2_hashes_and_tells_nothing_of_which_part_was_wrong(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    add_user(users, "ada", "admin", "correct horse")
    add_user(users, "ada", "operator", "new horse")  # replaced, not added
    text = users.read_text()
    assert "horse" not in text and "$argon2id$" in text and text.count('"ada"') == 1
    assert users.stat().st_mode & 0o077 == 0
    store = LocalUsers(users)
    found = store.authenticate("ada", "new horse")
    assert found is not None and (found.role, found.may_operate, found.is_admin) == ("operator", True, False)
    assert store.authenticate("ada", "correct horse") is None
    assert store.authenticate("nobody", "new horse") is None
    with pytest.raises(ValueError, match="invalid console user"):
        add_user(users, "../x", "admin", "pw")


def test_a_sign_in_sets_a_strict_httponly_cookie_and_signing_out_ends_it(console: TestClient) -> None:
    assert console.get("/api/me").status_code == 401
    assert console.get("/", follow_redirects=False).headers["location"] == "/login"
    assert sign_in(console, "vic", "wrong") == 401
    reply = console.post("/api/login", json={"username": "vic", "password": "battery staple"})
    assert reply.status_code == 200 and reply.json()["role"] == "viewer", reply.text
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    kept = console.cookies[COOKIE]
    assert console.get("/api/me").json() == {
        "username": "vic",
        "role": "viewer",
        "may_operate": False,
        "is_admin": False,
    }
    assert console.get("/").status_code == 200
    assert "frame-ancestors 'none'" in console.get("/").headers["content-security-policy"]

    assert console.post("/api/logout", json={}).status_code == 204
    console.cookies.set(COOKIE, kept)  # a copy kept of the cookie does not outlive the sign-out
    assert console.get("/api/me").status_code == 401
    console.cookies.set(COOKIE, kept.split(".")[0] + ".forged")
    assert console.get("/api/me").status_code == 401


def test_changes_must_be_json_from_this_origin(console: TestClient) -> None:
    assert sign_in(console, "ada", "correct horse") == 200
    path = f"/api/ops/incidents/inc-{'0' * 12}/remediations"
    form = console.post(path, data={"action": "free_temp_space"})
    assert form.status_code == 403 and form.json()["detail"] == "send JSON"
    foreign = console.post(
        path, json={"action": "free_temp_space"}, headers={"origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and foreign.json()["detail"] == "not from this origin"
    login_form = console.post("/api/login", data={"username": "ada", "password": "correct horse"})
    assert login_form.status_code in (403, 422)
    # Only ops routes pass through, and the token exchange is never one of them.
    assert console.post("/api/ops/console-tokens", json={"username": "x", "role": "admin"}).status_code == 404
    assert console.get("/api/ops/metrics").status_code == 404
    assert console.get("/api/ops/../v1/auth/session").status_code == 404


def test_the_live_websocket_needs_the_session_cookie_and_this_origin(console: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as refused, console.websocket_connect("/ws/live"):
        pass
    assert refused.value.code == 4401
    assert sign_in(console, "vic", "battery staple") == 200
    foreign = {"origin": "https://evil.example"}
    with pytest.raises(WebSocketDisconnect), console.websocket_connect("/ws/live", headers=foreign):
        pass
    with console.websocket_connect("/ws/live", headers={"origin": BASE}) as live:
        snapshot = live.receive_json()  # the cloud is unreachable here: said, not hidden
        assert snapshot["sessions"] == [] and snapshot["error"]
