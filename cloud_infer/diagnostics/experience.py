"""The thin client's experience reports: what ``POST /v1/desktop/{session_id}/experience`` takes, and
the fleet's distributions of them as OpenTelemetry histograms.

The desk page measures on its own RFB websocket what its user lives with (``desk/static/experience.js``,
docs/diagnostics.md has each figure's definition) and reports a window of it every few seconds. A report
is numbers only (ops data: no pixels, no keys, no titles), refused whole when a field is unknown or out
of its range. The histograms carry no session attribute: per session the figures are ops diagnostics'
(its drill-down and the ``experience_degraded`` rule), the fleet's spread is the telemetry's.
"""

from __future__ import annotations

from opentelemetry import metrics
from pydantic import BaseModel, ConfigDict, Field

from cloud_infer.diagnostics.signals import ExperienceSample

meter = metrics.get_meter(__name__)

# A minute of waiting is as bad as it gets; a figure above it is a broken client, not a measurement.
MAX_MS = 60_000.0
# 10 GB/s: no thin client's link carries more.
MAX_BYTES_PER_S = 1e10


class ExperienceReport(BaseModel):
    """One window of the thin client's measurements; a figure the window had nothing to measure by (no
    echo answered, no input sent, no frame) is null."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    window_s: float = Field(gt=0, le=60, description="How long the window measured, in seconds.")
    fps: float = Field(ge=0, le=240, description="Completed framebuffer updates per second.")
    bytes_down_per_s: float = Field(ge=0, le=MAX_BYTES_PER_S, description="RFB bytes received per second.")
    bytes_up_per_s: float = Field(ge=0, le=MAX_BYTES_PER_S, description="RFB bytes sent per second.")
    inputs: int = Field(ge=0, le=100_000, description="Key and pointer events sent to the desktop.")
    rtt_ms: float | None = Field(
        default=None, ge=0, le=MAX_MS, description="Median round trip of the echo websocket, in ms."
    )
    frame_delay_ms: float | None = Field(
        default=None, ge=0, le=MAX_MS, description="Median time from an update request to that update drawn."
    )
    input_latency_ms: float | None = Field(
        default=None,
        ge=0,
        le=MAX_MS,
        description="Median time from an input to the first update drawn that could show it.",
    )

    def sample(self, t: float) -> ExperienceSample:
        """The report as received at ``t`` (the cloud's clock)."""
        return ExperienceSample(t=t, **self.model_dump())


class ExperienceMetrics:
    """The fleet's experience as histograms, one record per report and figure it measured."""

    def __init__(self) -> None:
        def histogram(name: str, unit: str, description: str) -> metrics.Histogram:
            return meter.create_histogram(f"shadowdesk.experience.{name}", unit=unit, description=description)

        self._histograms = {
            "rtt_ms": histogram("rtt", "ms", "Thin clients' round trip to the cloud."),
            "frame_delay_ms": histogram("frame_delay", "ms", "Thin clients' update request to drawn."),
            "input_latency_ms": histogram("input_latency", "ms", "Thin clients' input to display."),
            "fps": histogram("frame_rate", "{frame}/s", "Thin clients' completed updates per second."),
            "bytes_down_per_s": histogram("bandwidth_down", "By/s", "Thin clients' RFB bytes received."),
            "bytes_up_per_s": histogram("bandwidth_up", "By/s", "Thin clients' RFB bytes sent."),
        }

    def record(self, sample: ExperienceSample) -> None:
        for name, histogram in self._histograms.items():
            value = getattr(sample, name)
            if value is not None:
                histogram.record(value)
