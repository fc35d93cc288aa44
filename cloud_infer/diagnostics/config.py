"""Settings of ops diagnostics, from ``SHADOWDESK_DIAGNOSTICS_*`` variables.

Precedence: constructor argument, then environment, then the default below. The thresholds are the
documented rules of docs/diagnostics.md; the baseline catches what is unusual for one session.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SHADOWDESK_DIAGNOSTICS_"


class DiagnosticsSettings(BaseSettings):
    """When a session's metrics become a finding, and how findings are grouped into incidents."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    memory_percent: float = Field(
        default=95.0, gt=0, le=100, description="Memory pressure: memory in use above this percentage ..."
    )
    memory_for_s: float = Field(default=10.0, ge=0, description="... for at least this many seconds.")
    cpu_percent: float = Field(
        default=95.0, gt=0, le=100, description="Saturated CPU: CPU busy above this percentage ..."
    )
    cpu_for_s: float = Field(default=30.0, ge=0, description="... for at least this many seconds.")
    disk_used_percent: float = Field(
        default=95.0,
        gt=0,
        le=100,
        description="Disk in use at or above this percentage is a full disk.",
    )
    baseline_window_s: float = Field(
        default=300.0, gt=0, description="The recent history a session's own baseline is computed over."
    )
    baseline_min_samples: int = Field(
        default=30, ge=5, description="Samples a baseline needs before it judges anything."
    )
    baseline_z: float = Field(
        default=6.0,
        gt=0,
        description="Robust z-score (distance from the baseline's median in scaled MADs) that is unusual.",
    )
    baseline_for_s: float = Field(
        default=10.0, ge=0, description="How long a metric must stay unusual before it is a finding."
    )
    group_window_s: float = Field(
        default=60.0,
        gt=0,
        description="Sessions whose same fault starts within this long of an open incident's last start "
        "join that incident instead of opening another.",
    )
    clear_after_s: float = Field(
        default=30.0, ge=0, description="A session's finding is over once it has been absent this long."
    )
    remediation_deadline_s: float = Field(
        default=60.0, gt=0, le=3600, description="How long a remediation command may wait for its agent."
    )
    verify_s: float = Field(
        default=90.0,
        gt=0,
        description="How long after a remediation's command succeeded its symptom may take to clear before "
        "the remediation is reported as not having fixed it.",
    )
    max_sessions: int = Field(
        default=20_000, ge=1, description="Sessions whose recent metrics are held in memory at once."
    )
