"""Settings of the thin client (the desktop relay and the ``/desk`` page), from ``SHADOWDESK_DESKTOP_*``.

Precedence: constructor argument, then environment, then the default below. Where each session's
desktop is comes from here, the platform's control plane, and never from an agent: an agent must not be
able to make the cloud connect to a socket of its choosing.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SHADOWDESK_DESKTOP_"
# "<user id>/<session id>": session ids are unique per user only (recall_store.naming.validate_id).
_KEY_RE = re.compile(r"^[A-Za-z0-9._@-]{1,128}/[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HOST_PORT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
UNIX_PREFIX = "unix:"


class DesktopSettings(BaseSettings):
    """Where each session's VNC server listens, the relay's deadlines, and where noVNC is installed."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    endpoints: dict[str, str] = Field(
        default_factory=dict,
        description='JSON object of "<user id>/<session id>" to the VNC server of that session\'s desktop: '
        '"unix:/run/…/rfb.sock" or "host:port" (a private network address). Only these are ever reached.',
    )
    novnc_dir: Path = Field(
        default=Path("/usr/share/novnc"),
        description="noVNC's installed files (its `core/` and `vendor/` ES modules are served under "
        "`/desk/novnc/`); Debian's `novnc` package puts them here.",
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, description="Deadline of connecting to a desktop's VNC server."
    )
    send_timeout_s: float = Field(
        default=15.0,
        gt=0,
        description="Deadline of handing one chunk to the browser or the VNC server; a peer that reads "
        "slower is disconnected.",
    )
    idle_timeout_s: float = Field(
        default=900.0,
        gt=0,
        description="A relay with no byte either way for this long is closed (the page reconnects).",
    )
    read_chunk_bytes: int = Field(
        default=64 * 1024, ge=1024, le=4 * 1024 * 1024, description="Most bytes relayed in one message."
    )

    @field_validator("endpoints")
    @classmethod
    def _check_endpoints(cls, value: dict[str, str]) -> dict[str, str]:
        for key, endpoint in value.items():
            if not _KEY_RE.fullmatch(key):
                raise ValueError(f"desktop endpoint key {key!r} is not <user id>/<session id>")
            parse_endpoint(endpoint)
        return value


def parse_endpoint(endpoint: str) -> tuple[str, int] | Path:
    """``(host, port)`` or a unix socket's absolute path; ValueError for anything else."""
    if endpoint.startswith(UNIX_PREFIX):
        path = Path(endpoint.removeprefix(UNIX_PREFIX))
        if not path.is_absolute():
            raise ValueError(f"a unix endpoint needs an absolute path, got {endpoint!r}")
        return path
    match = _HOST_PORT_RE.fullmatch(endpoint)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f'a desktop endpoint is "unix:/path" or "host:port", got {endpoint!r}')
    return match.group(1).strip("[]"), int(match.group(2))
