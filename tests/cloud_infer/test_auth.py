"""Tokens (key ids, audiences, scopes, bounded lifetimes, rotation) and the settings that fail closed."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import jwt
import pytest
from pydantic import SecretStr, ValidationError

from cloud_infer.auth import TokenAuthority, bearer_token, issue_token
from cloud_infer.config import DEV_TOKEN_SECRET, ServerSettings
from cloud_infer.errors import PermissionDeniedError, TokenExpiredError, TokenInvalidError
from tests.support.cloud import SECRET

OTHER_SECRET = "another-secret-long-enough-for-hs256-xx"
AUTHORITY = TokenAuthority("k1", {"k1": SECRET})


def test_ingest_token_binds_user_and_session() -> None:
    token = AUTHORITY.issue("ann@example.com", ["ingest"], session_id="desk-1", ttl_s=60)
    claims = AUTHORITY.verify(token, "ingest")
    assert (claims.user_id, claims.scopes, claims.session_id) == ("ann@example.com", {"ingest"}, "desk-1")
    assert time.time() < claims.expires_at <= time.time() + 61
    assert jwt.get_unverified_header(token)["kid"] == "k1"


def test_read_token_has_no_session_and_no_manage() -> None:
    claims = AUTHORITY.verify(AUTHORITY.issue("ann", ["read"]), "read")
    assert (claims.user_id, claims.session_id, claims.scopes) == ("ann", None, {"read"})
    with pytest.raises(PermissionDeniedError, match="manage"):
        claims.require("manage")
    assert AUTHORITY.verify(AUTHORITY.issue("ann", ["read", "manage"]), "manage").scopes == {"read", "manage"}


def test_default_lifetime_is_short() -> None:
    claims = AUTHORITY.verify(AUTHORITY.issue("ann", ["read"]), "read")
    assert claims.expires_at - claims.issued_at == 3600


@pytest.mark.parametrize(
    ("issued", "needed"),
    [(["read"], "ingest"), (["ingest"], "read"), (["login"], "read"), (["read"], "login")],
    ids=["read-as-ingest", "ingest-as-api", "ticket-as-api", "api-as-ticket"],
)
def test_a_token_opens_only_its_own_door(
    issued: list[Literal["read", "ingest", "login"]], needed: str
) -> None:
    extra: dict[str, object] = {"session_id": "desk-1"} if issued == ["ingest"] else {}
    if issued == ["login"]:
        extra["grants"] = ["read"]
    token = AUTHORITY.issue("ann", issued, **extra)  # type: ignore[arg-type]
    with pytest.raises(TokenInvalidError):
        AUTHORITY.verify(token, needed)  # type: ignore[arg-type]


def test_expired_token_is_refused() -> None:
    past = int(time.time()) - 120
    token = jwt.encode(
        {
            "iss": "shadowdesk",
            "aud": "shadowdesk-api",
            "sub": "ann",
            "scope": "read",
            "iat": past,
            "exp": past + 60,
            "jti": "x",
        },
        SECRET,
        "HS256",
        headers={"kid": "k1"},
    )
    with pytest.raises(TokenExpiredError, match="expired"):
        AUTHORITY.verify(token, "read")


def _signed(claims: dict[str, object], kid: str | None = "k1", secret: str = SECRET) -> str:
    now = int(time.time())
    base: dict[str, object] = {
        "iss": "shadowdesk",
        "aud": "shadowdesk-api",
        "iat": now,
        "exp": now + 3600,  # built at collection time: valid for the whole run
        "jti": "j",
    }
    headers = {"kid": kid} if kid else None
    return jwt.encode({**base, **claims}, secret, "HS256", headers=headers)


@pytest.mark.parametrize(
    ("token", "scope"),
    [
        ("", "read"),
        ("garbage", "read"),
        (issue_token(OTHER_SECRET, "ann", "read"), "read"),
        (_signed({"sub": "ann", "scope": "read"}, kid=None), "read"),
        (_signed({"sub": "ann", "scope": "read"}, kid="k9"), "read"),
        (_signed({"sub": "ann", "scope": "read", "aud": "someone-else"}), "read"),
        (_signed({"sub": "ann", "scope": "read", "exp": None}), "read"),
        (_signed({"sub": "../etc", "scope": "read"}), "read"),
        (_signed({"sub": "ann", "scope": "ingest", "aud": "shadowdesk-ingest"}), "ingest"),
        (_signed({"sub": "ann", "scope": "ingest", "sid": "a/b", "aud": "shadowdesk-ingest"}), "ingest"),
        (_signed({"sub": "ann", "scope": "read", "iss": "someone-else"}), "read"),
        (_signed({"sub": "ann", "scope": "read", "exp": int(time.time()) + 30 * 86400}), "read"),
        (jwt.encode({"sub": "ann", "scope": "read"}, SECRET, "HS256", headers={"kid": "k1"}), "read"),
        (_signed({"sub": "ann", "scope": "read"}, secret=OTHER_SECRET), "read"),
        (_signed({"sub": "console.ada", "scope": "read manage"}), "read"),
        (
            _signed({"sub": "console.ada", "scope": "ingest", "sid": "s1", "aud": "shadowdesk-ingest"}),
            "ingest",
        ),
    ],
    ids=[
        "empty",
        "garbage",
        "other-secret",
        "no-key-id",
        "unknown-key-id",
        "audience",
        "no-exp",
        "bad-subject",
        "no-session",
        "bad-session",
        "issuer",
        "lives-too-long",
        "bare",
        "forged",
        "console-subject-manage",
        "console-subject-ingest",
    ],
)
def test_bad_tokens_are_refused(token: str, scope: Literal["ingest", "read"]) -> None:
    with pytest.raises(TokenInvalidError):
        AUTHORITY.verify(token, scope)


def test_rotation_keeps_old_tokens_until_their_key_is_dropped() -> None:
    old = TokenAuthority("k1", {"k1": SECRET}).issue("ann", ["read"])
    rotated = TokenAuthority("k2", {"k2": OTHER_SECRET, "k1": SECRET})
    assert rotated.verify(old, "read").user_id == "ann"
    assert jwt.get_unverified_header(rotated.issue("ann", ["read"]))["kid"] == "k2"
    with pytest.raises(TokenInvalidError, match="key id"):
        TokenAuthority("k2", {"k2": OTHER_SECRET}).verify(old, "read")


def test_settings_build_the_authority_with_previous_keys() -> None:
    settings = ServerSettings(
        environment="local",
        token_secret=SecretStr(OTHER_SECRET),
        token_key_id="k2",
        token_previous_keys={"k1": SecretStr(SECRET)},
    )
    authority = TokenAuthority.from_settings(settings)
    assert authority.verify(issue_token(SECRET, "ann", "read"), "read").user_id == "ann"


def test_issue_refuses_what_it_cannot_sign() -> None:
    with pytest.raises(ValueError, match="needs a session id"):
        AUTHORITY.issue("ann", ["ingest"])
    with pytest.raises(ValueError, match="lives"):
        AUTHORITY.issue("ann", ["read"], ttl_s=0)
    with pytest.raises(ValueError, match="lives"):
        AUTHORITY.issue("ann", ["read"], ttl_s=2 * 86400)
    with pytest.raises(ValueError, match="user id"):
        AUTHORITY.issue("a/b", ["read"])
    with pytest.raises(ValueError, match="always carries read"):
        AUTHORITY.issue("ann", ["manage"])
    with pytest.raises(ValueError, match="login ticket grants"):
        AUTHORITY.issue("ann", ["login"])


def test_the_console_namespace_holds_ops_roles_only() -> None:
    """``console.<username>`` is how the cloud names an admin console user: no desktop session and no
    user data can ever be made for such a subject, so a console user never reads anyone's history."""
    claims = AUTHORITY.verify(AUTHORITY.issue("console.ada", ["read", "admin"]), "read")
    assert claims.user_id == "console.ada" and claims.scopes == {"read", "admin"}
    for scopes, session in ((["ingest"], "s1"), (["read", "manage"], None), (["login"], None)):
        with pytest.raises(ValueError, match="console users"):
            AUTHORITY.issue("console.ada", scopes, session_id=session, grants=["read"])  # type: ignore[arg-type]
    lookalike = AUTHORITY.issue("consoles.ada", ["read", "manage"])
    assert AUTHORITY.verify(lookalike, "read").user_id == "consoles.ada"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc")],
)
def test_bearer_header(header: str, expected: str) -> None:
    assert bearer_token(header) == expected


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   "])
def test_bad_bearer_header(header: str | None) -> None:
    with pytest.raises(TokenInvalidError):
        bearer_token(header)


def test_an_empty_environment_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHADOWDESK_ENVIRONMENT", "SHADOWDESK_TOKEN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="SHADOWDESK_TOKEN_SECRET"):
        ServerSettings()


def test_the_server_command_fails_closed_with_an_empty_environment(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "shadowdesk.cli", "server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SHADOWDESK_TOKEN_SECRET" in result.stderr


def test_production_needs_a_real_secret_and_tls(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValidationError, match="development secret"):
        ServerSettings(environment="production")
    with pytest.raises(ValidationError, match="needs TLS"):
        ServerSettings(environment="production", token_secret=SecretStr(SECRET))
    tls = ServerSettings(
        environment="production",
        token_secret=SecretStr(SECRET),
        tls_cert=tmp_path / "cert.pem",
        tls_key=tmp_path / "key.pem",
    )
    assert tls.tls
    with caplog.at_level(logging.CRITICAL, logger="cloud_infer.config"):
        ServerSettings(environment="staging", token_secret=SecretStr(SECRET), insecure_no_tls=True)
    assert "INSECURE" in caplog.text


def test_local_mode_is_loopback_only() -> None:
    assert ServerSettings(environment="local").token_secret.get_secret_value() == DEV_TOKEN_SECRET
    for host in ("0.0.0.0", "10.0.0.5", "::"):
        with pytest.raises(ValidationError, match="loopback"):
            ServerSettings(environment="local", http_host=host)
        with pytest.raises(ValidationError, match="loopback"):
            ServerSettings(environment="local", grpc_host=host)


def test_settings_refuse_short_secret_and_half_tls(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        ServerSettings(environment="local", token_secret=SecretStr("short"))
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        ServerSettings(environment="local", token_previous_keys={"k0": SecretStr("short")})
    with pytest.raises(ValidationError, match="TLS_CERT and SHADOWDESK_TLS_KEY"):
        ServerSettings(environment="local", tls_cert=tmp_path / "cert.pem")
    with pytest.raises(ValidationError, match="TLS_CLIENT_CA needs"):
        ServerSettings(environment="local", tls_client_ca=tmp_path / "ca.pem")
