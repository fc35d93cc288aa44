"""Settings of the cloud ingest server, read from ``SHADOWDESK_*`` environment variables.

Precedence: constructor argument, then environment, then the default below. Every variable is the
field name upper-cased with the prefix, e.g. ``SHADOWDESK_GRPC_PORT``; the store has its own settings
(``recall_store.config.StoreSettings``, prefix ``SHADOWDESK_STORE_``), so no field here starts with
``store_``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SHADOWDESK_"
# At least 32 bytes, so even the demo key is long enough for HS256.
DEV_TOKEN_SECRET = "shadowdesk-local-dev-secret-change-me"

logger = logging.getLogger(__name__)


class ServerSettings(BaseSettings):
    """Where the server listens, how it checks tokens, and the limits it enforces on agents."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    environment: Literal["local", "staging", "production"] = Field(
        default="local", description="`local` allows the built-in development token secret; others refuse it."
    )
    grpc_host: str = Field(default="127.0.0.1", description="Interface of the gRPC ingest server.")
    grpc_port: int = Field(default=50051, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    http_host: str = Field(default="127.0.0.1", description="Interface of the HTTP read API.")
    http_port: int = Field(default=8080, ge=0, le=65535, description="HTTP port of the read API.")
    token_secret: SecretStr = Field(
        default=SecretStr(DEV_TOKEN_SECRET),
        description="HS256 key signing ingest and read tokens; at least 32 bytes; never logged.",
    )
    max_message_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Largest gRPC message accepted from an agent."
    )
    max_batch_events: int = Field(default=2000, ge=1, description="Most events in one EventBatch.")
    max_clock_skew_s: float = Field(
        default=300.0, ge=0, description="How far in the future an event timestamp may be."
    )
    max_event_age_s: float = Field(
        default=7 * 24 * 3600.0, gt=0, description="How far in the past an event timestamp may be."
    )
    max_title_chars: int = Field(default=2048, ge=1, description="Longest window or page title.")
    max_text_chars: int = Field(default=65536, ge=1, description="Longest text snapshot or clipboard text.")
    max_url_chars: int = Field(default=8192, ge=1, description="Longest URL.")
    max_frame_bytes: int = Field(default=2 * 1024 * 1024, ge=1, description="Largest encoded screen frame.")
    max_frame_dimension: int = Field(
        default=8192, ge=1, description="Largest frame width or height (pixels)."
    )
    tls_cert: Path | None = Field(default=None, description="PEM server certificate; enables TLS on gRPC.")
    tls_key: Path | None = Field(default=None, description="PEM private key of `tls_cert`.")
    tls_client_ca: Path | None = Field(
        default=None,
        description="PEM CA bundle; when set, agents must present a client cert it signed (mTLS).",
    )
    keepalive_time_s: float = Field(default=30.0, gt=0, description="Interval of server keepalive pings.")
    keepalive_timeout_s: float = Field(
        default=10.0, gt=0, description="Wait for a ping answer before closing."
    )
    shutdown_grace_s: float = Field(
        default=5.0, ge=0, description="On SIGTERM, time in-flight streams get to finish their batch."
    )

    @model_validator(mode="after")
    def _check_secret_and_tls(self) -> ServerSettings:
        secret = self.token_secret.get_secret_value()
        if secret == DEV_TOKEN_SECRET:
            if self.environment != "local":
                raise ValueError(
                    f"set {ENV_PREFIX}TOKEN_SECRET: the development secret is only for local runs"
                )
            logger.warning("using the development token secret; set %sTOKEN_SECRET outside demos", ENV_PREFIX)
        if len(secret.encode()) < 32:
            raise ValueError(f"{ENV_PREFIX}TOKEN_SECRET must be at least 32 bytes")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError(f"set both {ENV_PREFIX}TLS_CERT and {ENV_PREFIX}TLS_KEY, or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError(f"{ENV_PREFIX}TLS_CLIENT_CA needs {ENV_PREFIX}TLS_CERT and {ENV_PREFIX}TLS_KEY")
        return self
