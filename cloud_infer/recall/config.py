"""Settings of Recall (OCR, moments, index, search, retention), from ``SHADOWDESK_RECALL_*`` variables.

Precedence: constructor argument, then environment, then the default below.
"""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SHADOWDESK_RECALL_"


def usable_cores() -> int:
    """Cores this process may run on (its affinity, e.g. a container's cpuset), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class RecallSettings(BaseSettings):
    """How screen history becomes searchable, and how search and retention behave."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    enabled: bool = Field(
        default=True, description="Run the recall pipeline (OCR, index) on ingested events."
    )
    ocr_workers: int = Field(
        default_factory=usable_cores,
        ge=1,
        le=64,
        description="OCR worker threads (one core each; default: one per usable core). A burst's frames "
        "are read at once: different windows, and one window's pages that share nothing.",
    )
    embed_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="CPU threads of each lane of the embedding model (multilingual-e5-small on "
        "onnxruntime): a query takes ~8 ms on one.",
    )
    embed_workers: int = Field(
        default_factory=usable_cores,
        ge=1,
        le=64,
        description="Texts the embedding model's bulk lane (indexing, the embeddings API) encodes at once, "
        "each on its own model handle (default: one per usable core).",
    )
    embed_max_tokens: int = Field(
        default=128,
        ge=16,
        le=510,
        description="Tokens of an indexed text that are embedded (the rest is searched by its words only); "
        "each costs ~0.6 ms of one core.",
    )
    moment_max_span_s: float = Field(
        default=600.0, gt=0, description="A moment of one focused window rolls over after this many seconds."
    )
    compact_every_rows: int = Field(
        default=2000,
        ge=1,
        description="Compact a user's index and refresh its text index after this many rows.",
    )
    vector_index_min_rows: int = Field(
        default=50_000,
        ge=256,
        description="Build an approximate vector index once a user has this many rows.",
    )
    search_slots: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Searches running at once, taken in turns between users (default: one per core).",
    )
    candidates: int = Field(
        default=50, ge=1, le=1000, description="Rows each of lexical and vector search contribute to fusion."
    )
    max_vector_distance: float = Field(
        default=0.75,
        gt=0,
        le=2,
        description="Cosine distance (of language-centred vectors) beyond which a row is no semantic match.",
    )
    rewrite_queries: bool = Field(
        default=True,
        description="When a search finds nothing and an LLM is configured, retry with its keywords.",
    )
    retention_interval_s: float = Field(
        default=3600.0,
        gt=0,
        description="How often the retention job enforces each user's age and size limits.",
    )
    reconcile_interval_s: float = Field(
        default=600.0,
        gt=0,
        description="How often every user's erasures left unfinished are redone (batches left unindexed are "
        "caught up by the committed stream's sweep).",
    )
    timezone: str = Field(
        default="UTC", description="IANA zone for relative dates in queries when the client sends none."
    )
