"""The ingest validators' limits as the protocol tests use them: small batches, and a fixed clock."""

from __future__ import annotations

from pydantic import SecretStr

from cloud_infer.config import ServerSettings
from cloud_infer.ingest.protocol import IngestLimits
from tests.support.cloud import NS, SECRET

LIMITS = IngestLimits.from_settings(
    ServerSettings(environment="local", token_secret=SecretStr(SECRET), max_batch_events=20)
)
NOW_NS = 1_780_000_000 * NS  # fixed: the same examples on every run
