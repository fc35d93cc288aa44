"""Settings of the admin console, from ``SHADOWDESK_CONSOLE_*`` variables.

Precedence: constructor argument, then environment, then the default below.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SHADOWDESK_CONSOLE_"
WEB_DIR = Path(__file__).resolve().parent / "web"


class ConsoleSettings(BaseSettings):
    """Where the console listens, which cloud it shows, who may sign in, and how often it refreshes."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    host: str = Field(default="127.0.0.1", description="Interface the console's web app listens on.")
    port: int = Field(default=8081, ge=0, le=65535, description="The console's HTTP port; 0 picks one.")
    cloud_url: str = Field(
        default="http://127.0.0.1:8080", description="Base URL of the cloud tier's HTTP API (`/v1/ops`)."
    )
    service_token_file: Path = Field(
        default=Path("console-service-token"),
        description="File holding the console's own token (scope `ops_console`, "
        "`shadowdesk token --scope ops_console`); read again at each exchange, so it can be rotated.",
    )
    users_file: Path = Field(
        default=Path("console-users.json"),
        description="The local user store: JSON of users with argon2 password hashes and a role.",
    )
    session_secret: SecretStr = Field(
        min_length=32, description="HMAC key signing the session cookie; at least 32 characters."
    )
    session_ttl_s: int = Field(default=8 * 3600, ge=60, description="How long a sign-in lasts.")
    secure_cookie: bool = Field(
        default=False, description="Mark the session cookie Secure (set it when served over HTTPS)."
    )
    poll_interval_s: float = Field(
        default=1.0, gt=0, le=1.0, description="How often live pages get fresh fleet data (at most 1 s)."
    )
    http_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Deadline of each call to the cloud's API."
    )
    action_timeout_s: float = Field(
        default=150.0,
        gt=0,
        le=600,
        description="Deadline of an action sent to the cloud's API, which may wait on a language model "
        "(a root-cause analysis).",
    )
    web_dir: Path = Field(
        default_factory=lambda: WEB_DIR,
        description="The pages, scripts and npm-installed charts (`npm ci --prefix admin_console/web`).",
    )
