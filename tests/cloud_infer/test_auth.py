"""Tokens and the settings that guard their secret."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import jwt
import pytest
from pydantic import SecretStr, ValidationError

from cloud_infer.auth import bearer_token, issue_token, verify_token
from cloud_infer.config import DEV_TOKEN_SECRET, ServerSettings
from cloud_infer.errors import TokenExpiredError, TokenInvalidError
from tests.cloud_infer.helpers import SECRET


def test_ingest_token_binds_user_and_session() -> None:
    token = issue_token(SECRET, "ann@example.com", "ingest", session_id="desk-1", ttl_s=60)
    claims = verify_token(SECRET, token, "ingest")
    assert (claims.user_id, claims.scope, claims.session_id) == ("ann@example.com", "ingest", "desk-1")
    assert time.time() < claims.expires_at <= time.time() + 61


def test_read_token_has_no_session() -> None:
    claims = verify_token(SECRET, issue_token(SECRET, "ann", "read"), "read")
    assert (claims.user_id, claims.session_id) == ("ann", None)


def test_wrong_scope_is_refused() -> None:
    with pytest.raises(TokenInvalidError, match="needs 'ingest'"):
        verify_token(SECRET, issue_token(SECRET, "ann", "read"), "ingest")


def test_expired_token_is_refused() -> None:
    past = int(time.time()) - 120
    token = jwt.encode(
        {"iss": "shadowdesk", "sub": "ann", "scope": "read", "iat": past, "exp": past + 60}, SECRET, "HS256"
    )
    with pytest.raises(TokenExpiredError, match="expired"):
        verify_token(SECRET, token, "read")


def _signed(claims: dict[str, object]) -> str:
    return jwt.encode({"iss": "shadowdesk", "iat": 1, "exp": 2**40, **claims}, SECRET, "HS256")


@pytest.mark.parametrize(
    ("token", "scope"),
    [
        ("", "read"),
        ("garbage", "read"),
        (issue_token("another-secret-long-enough-for-hs256-xx", "ann", "read"), "read"),
        (jwt.encode({"iss": "shadowdesk", "sub": "ann", "scope": "read"}, SECRET, "HS256"), "read"),
        (_signed({"sub": "../etc", "scope": "read"}), "read"),
        (_signed({"sub": "ann", "scope": "ingest"}), "ingest"),
        (_signed({"sub": "ann", "scope": "ingest", "sid": "a/b"}), "ingest"),
        (_signed({"sub": "ann", "scope": "read", "iss": "someone-else"}), "read"),
    ],
    ids=["empty", "garbage", "other-secret", "no-exp", "bad-subject", "no-session", "bad-session", "issuer"],
)
def test_bad_tokens_are_refused(token: str, scope: Literal["ingest", "read"]) -> None:
    with pytest.raises(TokenInvalidError):
        verify_token(SECRET, token, scope)


def test_issue_refuses_what_it_cannot_sign() -> None:
    with pytest.raises(ValueError, match="needs a session id"):
        issue_token(SECRET, "ann", "ingest")
    with pytest.raises(ValueError, match="ttl_s"):
        issue_token(SECRET, "ann", "read", ttl_s=0)
    with pytest.raises(ValueError, match="user id"):
        issue_token(SECRET, "a/b", "read")


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


def test_settings_refuse_dev_secret_outside_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWDESK_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="SHADOWDESK_TOKEN_SECRET"):
        ServerSettings()
    monkeypatch.setenv("SHADOWDESK_TOKEN_SECRET", SECRET)
    assert ServerSettings().token_secret.get_secret_value() == SECRET
    assert ServerSettings(environment="local").token_secret.get_secret_value() == SECRET
    monkeypatch.delenv("SHADOWDESK_TOKEN_SECRET")
    monkeypatch.delenv("SHADOWDESK_ENVIRONMENT")
    assert ServerSettings().token_secret.get_secret_value() == DEV_TOKEN_SECRET


def test_settings_refuse_short_secret_and_half_tls(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        ServerSettings(token_secret=SecretStr("short"))
    with pytest.raises(ValidationError, match="TLS_CERT and SHADOWDESK_TLS_KEY"):
        ServerSettings(tls_cert=tmp_path / "cert.pem")
    with pytest.raises(ValidationError, match="TLS_CLIENT_CA needs"):
        ServerSettings(tls_client_ca=tmp_path / "ca.pem")
