"""Per-user limits, read from ``SHADOWDESK_LIMIT_*`` environment variables.

Precedence: constructor argument, then environment, then the default below. Rates are per user;
concurrencies count one user's requests in flight. The defaults leave a person at the sidebar far
from every limit and stop one tenant's flood from costing the others more than a share.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SHADOWDESK_LIMIT_"
GIB = 1 << 30
MIB = 1 << 20


class TenantLimitSettings(BaseSettings):
    """What one user may use of the shared server: requests, CPU models, ingest and storage."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    search_per_minute: int = Field(default=120, ge=1, description="Searches one user may start a minute.")
    search_concurrency: int = Field(default=4, ge=1, description="Searches of one user running at once.")
    timeline_per_minute: int = Field(default=60, ge=1, description="Timeline reads a minute.")
    frames_per_minute: int = Field(default=1200, ge=1, description="Frame and thumbnail reads a minute.")
    frames_concurrency: int = Field(default=8, ge=1, description="Frame reads of one user at once.")
    export_per_hour: int = Field(default=6, ge=1, description="History exports one user may start an hour.")
    erase_per_minute: int = Field(default=10, ge=1, description="Erasures of any kind a minute.")
    embeddings_per_minute: int = Field(default=30, ge=1, description="Embedding API requests a minute.")
    embeddings_concurrency: int = Field(default=1, ge=1, description="Embedding API requests at once.")
    commands_per_minute: int = Field(
        default=120, ge=1, description="Commands one user may issue or cancel a minute (to their desktops)."
    )
    commands_concurrency: int = Field(default=4, ge=1, description="Command requests of one user at once.")
    api_per_minute: int = Field(default=600, ge=1, description="Any other API request a minute.")
    api_concurrency: int = Field(default=16, ge=1, description="Any other API requests at once.")
    experience_per_minute: int = Field(
        default=30,
        ge=1,
        description="Thin client experience reports a minute (a desk page reports every 5 s).",
    )
    # A /desk tab holds about five (RFB, echo, the sidebar's live sockets): three tabs fit.
    websockets: int = Field(default=16, ge=1, description="Open websockets of one user.")
    logins_per_minute: int = Field(
        default=30, ge=1, description="Login-ticket redemptions a minute from one client address."
    )
    # A desktop sends a few events a second; a spool replayed after a long offline spell goes at this
    # rate after one full batch (max_batch_events, max_message_bytes) at once.
    ingest_events_per_s: float = Field(
        default=200.0, gt=0, description="Sustained events a second one user's agents may store."
    )
    ingest_burst_events: int = Field(
        default=2_000, ge=1, description="Events one user may store at once after a quiet spell."
    )
    ingest_frames_per_s: float = Field(
        default=5.0,
        gt=0,
        description="Sustained screen frames a second (each is an object to store and a screen to OCR); "
        "an agent sends at most two.",
    )
    ingest_burst_frames: int = Field(default=100, ge=1, description="Frames stored at once after a lull.")
    ingest_bytes_per_s: float = Field(
        default=2.0 * MIB, gt=0, description="Sustained bytes a second one user's agents may store."
    )
    ingest_burst_bytes: int = Field(default=4 * MIB, ge=1, description="Bytes stored at once after a lull.")
    ingest_streams: int = Field(default=16, ge=1, description="gRPC streams of one user open at once.")
    storage_quota_bytes: int = Field(
        default=20 * GIB, ge=1, description="Bytes one user's space may hold; ingest is refused beyond it."
    )
    embed_slice_chars: int = Field(
        default=1536,
        ge=64,
        description="Characters of text the shared embedding model encodes for one user before another "
        "user's turn (one long text, ~0.1 s on one core).",
    )
