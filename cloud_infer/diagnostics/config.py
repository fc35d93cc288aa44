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
    memory_for_s: float = Field(default=5.0, ge=0, description="... for at least this many seconds.")
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
    probe_ms: float = Field(
        default=500.0,
        gt=0,
        description="Unresponsive desktop: the agent's X round trip (its desktop probe) slower than this "
        "many ms ...",
    )
    probe_for_s: float = Field(default=10.0, ge=0, description="... for at least this many seconds.")
    link_ms: float = Field(
        default=2000.0,
        gt=0,
        description="Degraded cloud link: batches acknowledged (or waiting for their Ack) slower than this "
        "many ms ...",
    )
    link_for_s: float = Field(default=10.0, ge=0, description="... for at least this many seconds.")
    swap_pages_per_s: float = Field(
        default=1000.0,
        gt=0,
        description="Swap thrashing: pages swapped in and out faster than this per second ...",
    )
    swap_for_s: float = Field(default=10.0, ge=0, description="... for at least this many seconds.")
    experience_lag_ms: float = Field(
        default=300.0,
        gt=0,
        description="Degraded experience: what the user's thin client waits for (the network's round "
        "trip, or the time until an input shows; a frozen screen counts as its report's window) longer "
        "than this many ms ...",
    )
    experience_for_s: float = Field(
        default=20.0, ge=0, description="... in every report for at least this many seconds."
    )
    experience_stale_s: float = Field(
        default=15.0,
        gt=0,
        description="A thin client that has not reported for this long (its tab closed) no longer holds "
        "a finding.",
    )
    hang_s: float = Field(
        default=5.0, gt=0, description="An app whose window leaves the ping unanswered this long is hung."
    )
    fault_hold_s: float = Field(
        default=60.0,
        gt=0,
        description="An app crash or OOM kill is a finding for this long after it (then it clears).",
    )
    crash_loop_count: int = Field(
        default=3, ge=2, description="A crash loop: this many crashes of the same app (and version) ..."
    )
    crash_loop_window_s: float = Field(default=120.0, gt=0, description="... within this many seconds.")
    app_start_window_s: float = Field(
        default=1800.0, gt=0, description="The recent starts of an app (across the fleet) its baseline uses."
    )
    app_start_min_samples: int = Field(
        default=5, ge=3, description="Starts an app's baseline needs before it judges one slow."
    )
    app_start_z: float = Field(
        default=6.0,
        gt=0,
        description="A start this many scaled MADs (at least 10 % of the median) above the app's median "
        "start is slow ...",
    )
    app_start_floor_ms: float = Field(
        default=2000.0, ge=0, description="... and never one that took less than this many ms."
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
        default=10.0, ge=0, description="How long memory must stay unusual before it is a finding."
    )
    cpu_unusual_for_s: float = Field(
        default=60.0,
        ge=0,
        description="How long CPU must stay unusual before it is a finding: a desktop's ordinary bursts "
        "(an app starting, a page loading, a build) last seconds to a minute, and at 10 s the fault-free "
        "soak (bench/ops_bench.py) counted 446 false incidents per 100 session-hours.",
    )
    group_window_s: float = Field(
        default=60.0,
        gt=0,
        description="Sessions whose fault of the same signature (rule and app and version, or rule and "
        "image or host) starts within this long of an open incident's last start join that incident "
        "instead of opening another.",
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
