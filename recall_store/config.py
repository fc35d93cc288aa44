"""Settings of the recall store, read from ``SHADOWDESK_STORE_*`` environment variables.

Precedence: constructor argument, then environment, then the default below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SHADOWDESK_STORE_"
DEFAULT_MINIO_SECRET = "minioadmin"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def _default_local_root() -> Path:
    return Path.home() / ".local" / "share" / "shadowdesk" / "store"


class StoreSettings(BaseSettings):
    """Which backend holds users' data and how to reach it."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    backend: Literal["local", "minio"] = Field(
        default="local",
        description="`local`: embedded filesystem store for a one-machine demo; `minio`: a MinIO/S3 server.",
    )
    local_root: Path = Field(
        default_factory=_default_local_root,
        description="Directory of the local backend; one sub-directory per user.",
    )
    minio_endpoint: str = Field(
        default="127.0.0.1:9000", description="host:port of the MinIO server (no scheme)."
    )
    minio_access_key: str = Field(default="minioadmin", description="MinIO access key (user).")
    minio_secret_key: SecretStr = Field(
        default=SecretStr(DEFAULT_MINIO_SECRET),
        description="MinIO secret key; never logged. The default is refused for a non-loopback endpoint.",
    )
    minio_secure: bool = Field(default=False, description="Use HTTPS to reach MinIO.")
    minio_encryption: bool = Field(
        default=True,
        description="Require server-side encryption (SSE-S3 with MinIO's KMS) of every user bucket; "
        "off only for a MinIO without a KMS.",
    )
    minio_region: str = Field(
        default="us-east-1",
        description="Region of the buckets; set so the client never has to ask the server for it.",
    )
    timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Deadline in seconds of every backend call (also the HTTP read timeout).",
    )
    connect_timeout_s: float = Field(
        default=3.0,
        gt=0,
        description="TCP connect timeout to MinIO, so a dead server is noticed quickly.",
    )
    workers: int = Field(
        default=16, ge=1, le=256, description="Size of the thread pool running blocking I/O."
    )

    @model_validator(mode="after")
    def _refuse_default_secret_off_machine(self) -> StoreSettings:
        host = self.minio_endpoint.rsplit(":", 1)[0]
        if (
            self.backend == "minio"
            and host not in _LOOPBACK_HOSTS
            and self.minio_secret_key.get_secret_value() == DEFAULT_MINIO_SECRET
        ):
            raise ValueError(
                f"set {ENV_PREFIX}MINIO_SECRET_KEY: the default secret is only for a MinIO on this machine"
            )
        return self
