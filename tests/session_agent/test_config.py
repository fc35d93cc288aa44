from __future__ import annotations

import pytest
from pydantic import ValidationError

from session_agent.config import KNOWN_SENSORS, AgentSettings

REQUIRED = {"token": "t", "user_id": "alice@example.com", "session_id": "s-1"}


def test_environment_is_read_with_prefix_and_sensors_take_a_comma_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHADOWDESK_AGENT_TOKEN", "secret-token")
    monkeypatch.setenv("SHADOWDESK_AGENT_USER_ID", "alice@example.com")
    monkeypatch.setenv("SHADOWDESK_AGENT_SESSION_ID", "s-1")
    monkeypatch.setenv("SHADOWDESK_AGENT_SENSORS", "frames, system_metrics")
    monkeypatch.setenv("SHADOWDESK_AGENT_FRAME_INTERVAL_S", "2.5")
    monkeypatch.setenv("DISPLAY", ":42")
    settings = AgentSettings()
    assert settings.token.get_secret_value() == "secret-token"
    assert "secret-token" not in repr(settings)
    assert settings.sensors == {"frames", "system_metrics"}
    assert settings.frame_interval_s == 2.5
    assert settings.display == ":42"


def test_sensors_also_take_a_json_list_and_default_to_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWDESK_AGENT_SENSORS", '["apps"]')
    assert AgentSettings(**REQUIRED, display=":1").sensors == {"apps"}
    monkeypatch.delenv("SHADOWDESK_AGENT_SENSORS")
    assert AgentSettings(**REQUIRED, display=":1").sensors == set(KNOWN_SENSORS)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sensors": "frames,keylogger"}, "unknown sensors ['keylogger']"),
        ({"display": "", "sensors": "window_focus"}, "need an X display"),
        ({"tls_cert": "/c.pem"}, "tls_cert and tls_key must be given together"),
        ({"tls_cert": "/c.pem", "tls_key": "/k.pem"}, "needs tls_ca"),
        ({"backoff_initial_s": 10, "backoff_max_s": 1}, "backoff_initial_s must not exceed"),
        ({"batch_max_bytes": 3 * 1024 * 1024}, "less than or equal to 2097152"),
        ({"session_id": "../etc"}, "must be 1-128 characters"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(overrides: dict[str, object], message: str) -> None:
    values = {**REQUIRED, "display": ":1", **overrides}
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        AgentSettings(**values)  # type: ignore[arg-type]
