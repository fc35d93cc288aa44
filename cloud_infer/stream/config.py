"""Settings of the committed-stream fan-out, from ``SHADOWDESK_STREAM_*`` variables.

Precedence: constructor argument, then environment, then the default below.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SHADOWDESK_STREAM_"


class StreamSettings(BaseSettings):
    """How much each consumer of the committed stream may hold in memory, and how it catches up."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    queue_batches: int = Field(
        default=16,
        ge=1,
        description="Committed batches one consumer holds in memory per session; past it, that session "
        "is read back from the event log.",
    )
    queue_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1,
        description="Bytes of committed batches one consumer holds in memory over all sessions (consumers "
        "share the same batches); past it, sessions are read back from the event log.",
    )
    chunk_events: int = Field(
        default=2000,
        ge=1,
        description="Most events handed to a consumer in one call (a batch larger than this still goes "
        "whole).",
    )
    consumer_concurrency: int = Field(
        default=8,
        ge=1,
        description="Calls one consumer has in progress at once over all sessions (unless it registers "
        "its own); sessions waiting for a turn gather larger chunks.",
    )
    store_concurrency: int = Field(
        default=4,
        ge=1,
        description="Store calls of the fan-out at once (event-log reads, cursor loads and saves, for all "
        "consumers), so that the store's workers stay free for ingest.",
    )
    cursor_save_interval_s: float = Field(
        default=30.0,
        ge=0,
        description="Longest a consumer's progress stays unsaved (0: after every call); after a crash "
        "at most this much is delivered again.",
    )
    retry_initial_s: float = Field(
        default=0.5, gt=0, description="First wait before a failed consumer call is retried."
    )
    retry_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait between retries of a failing consumer call."
    )
    sweep_interval_s: float = Field(
        default=600.0,
        gt=0,
        description="How often every user's sessions are checked for events a consumer has not taken "
        "(also at start).",
    )
    idle_evict_s: float = Field(
        default=60.0,
        gt=0,
        description="A caught-up session is forgotten from memory after this long without a new batch.",
    )
    close_grace_s: float = Field(
        default=5.0, ge=0, description="On shutdown, how long calls in progress may finish."
    )
    metrics_interval_s: float = Field(
        default=5.0, gt=0, description="How often each consumer's lag is published as metrics."
    )
