"""Settings of the cloud ingest server, read from ``SHADOWDESK_*`` environment variables.

Precedence: constructor argument, then environment, then the default below. Every variable is the
field name upper-cased with the prefix, e.g. ``SHADOWDESK_GRPC_PORT``; the store has its own settings
(``recall_store.config.StoreSettings``, prefix ``SHADOWDESK_STORE_``), so no field here starts with
``store_``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cloud_infer.frames import DEFAULT_MAX_FRAME_PIXELS

ENV_PREFIX = "SHADOWDESK_"
# At least 32 bytes, so even the demo key is long enough for HS256.
DEV_TOKEN_SECRET = "shadowdesk-local-dev-secret-change-me"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

logger = logging.getLogger(__name__)


class ServerSettings(BaseSettings):
    """Where the server listens, how it checks tokens, and the limits it enforces on agents and callers."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    environment: Literal["local", "staging", "production"] = Field(
        default="production",
        description="`local`: a one-machine demo, only on loopback, the development token secret allowed; "
        "anything else needs a real secret and TLS (or `INSECURE_NO_TLS`).",
    )
    grpc_host: str = Field(default="127.0.0.1", description="Interface of the gRPC ingest server.")
    grpc_port: int = Field(default=50051, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    http_host: str = Field(default="127.0.0.1", description="Interface of the HTTP API.")
    http_port: int = Field(default=8080, ge=0, le=65535, description="HTTP port of the API.")
    token_secret: SecretStr = Field(
        default=SecretStr(DEV_TOKEN_SECRET),
        description="HS256 key signing new tokens (key id `TOKEN_KEY_ID`); at least 32 bytes; never logged.",
    )
    token_key_id: str = Field(
        default="k1",
        min_length=1,
        max_length=64,
        description="Key id (JWT `kid`) of `TOKEN_SECRET`; give each new secret a new id to rotate keys.",
    )
    token_previous_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="JSON object of earlier key ids to secrets, accepted for verification only while their "
        "tokens live out a rotation.",
    )
    token_ttl_s: int = Field(default=3600, ge=60, description="Default lifetime of a read/manage token.")
    token_max_ttl_s: int = Field(
        default=24 * 3600, ge=60, description="Longest lifetime of a read/manage token; longer is refused."
    )
    ingest_token_ttl_s: int = Field(
        default=7 * 86400, ge=60, description="Default lifetime of an ingest token."
    )
    ingest_token_max_ttl_s: int = Field(
        default=30 * 86400, ge=60, description="Longest lifetime of an ingest token; longer ones are refused."
    )
    login_ticket_ttl_s: int = Field(
        default=600, ge=10, le=3600, description="Lifetime of a single-use sidebar login ticket."
    )
    session_max_s: int = Field(
        default=12 * 3600, ge=60, description="How long a sidebar may keep refreshing its token after login."
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
    max_frame_pixels: int = Field(
        default=DEFAULT_MAX_FRAME_PIXELS,
        ge=1,
        description="Largest frame width x height (pixels), checked from the image header before any decode.",
    )
    hello_timeout_s: float = Field(
        default=10.0, gt=0, description="A gRPC stream that sends no Hello within this time is closed."
    )
    tls_cert: Path | None = Field(
        default=None, description="PEM server certificate; enables TLS on gRPC and on the HTTP API."
    )
    tls_key: Path | None = Field(default=None, description="PEM private key of `tls_cert`.")
    tls_client_ca: Path | None = Field(
        default=None,
        description="PEM CA bundle; when set, agents must present a client cert it signed (mTLS).",
    )
    insecure_no_tls: bool = Field(
        default=False,
        description="Serve without TLS outside `local` (behind a TLS-terminating proxy); logged loudly.",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Browser origins besides the server's own that may open websockets (comma-separated).",
    )
    http_header_timeout_s: float = Field(
        default=10.0, gt=0, description="A connection must send a request's headers within this time."
    )
    http_body_timeout_s: float = Field(
        default=10.0, gt=0, description="A request must send its whole body within this time (else 408)."
    )
    http_request_timeout_s: float = Field(
        default=30.0, gt=0, description="Deadline of one HTTP request (else 504); see `EXPORT_TIMEOUT_S`."
    )
    export_timeout_s: float = Field(default=600.0, gt=0, description="Deadline of one history export.")
    http_keepalive_s: int = Field(
        default=5, ge=1, description="Idle keep-alive connections close after this many seconds."
    )
    http_max_connections: int = Field(
        default=2048, ge=1, description="Most open HTTP connections and websockets; more are answered 503."
    )
    keepalive_time_s: float = Field(default=30.0, gt=0, description="Interval of server keepalive pings.")
    keepalive_timeout_s: float = Field(
        default=10.0, gt=0, description="Wait for a ping answer before closing."
    )
    shutdown_grace_s: float = Field(
        default=5.0, ge=0, description="On SIGTERM, time in-flight streams get to finish their batch."
    )

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @model_validator(mode="after")
    def _fail_closed(self) -> ServerSettings:
        secrets = [self.token_secret, *self.token_previous_keys.values()]
        if any(len(secret.get_secret_value().encode()) < 32 for secret in secrets):
            raise ValueError(f"{ENV_PREFIX}TOKEN_SECRET (and every previous key) must be at least 32 bytes")
        if self.token_key_id in self.token_previous_keys:
            raise ValueError(f"{ENV_PREFIX}TOKEN_KEY_ID {self.token_key_id!r} is also a previous key id")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError(f"set both {ENV_PREFIX}TLS_CERT and {ENV_PREFIX}TLS_KEY, or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError(f"{ENV_PREFIX}TLS_CLIENT_CA needs {ENV_PREFIX}TLS_CERT and {ENV_PREFIX}TLS_KEY")
        dev_secret = self.token_secret.get_secret_value() == DEV_TOKEN_SECRET
        if self.environment == "local":
            exposed = [h for h in (self.grpc_host, self.http_host) if h not in LOOPBACK_HOSTS]
            if exposed:
                raise ValueError(
                    f"local mode listens on loopback only, not {', '.join(exposed)}: set "
                    f"{ENV_PREFIX}ENVIRONMENT=production with a real secret and TLS to serve a network"
                )
            if dev_secret:
                logger.warning("using the development token secret: local demo only")
            return self
        if dev_secret:
            raise ValueError(f"set {ENV_PREFIX}TOKEN_SECRET: the development secret is only for local runs")
        if not self.tls and not self.insecure_no_tls:
            raise ValueError(
                f"{self.environment} needs TLS: set {ENV_PREFIX}TLS_CERT and {ENV_PREFIX}TLS_KEY, or "
                f"{ENV_PREFIX}INSECURE_NO_TLS=true behind a proxy that terminates TLS"
            )
        if not self.tls:
            logger.critical(
                "INSECURE: serving gRPC and HTTP without TLS in %s (%sINSECURE_NO_TLS); tokens and screen "
                "history cross the network in clear text unless a proxy terminates TLS",
                self.environment,
                ENV_PREFIX,
            )
        return self
