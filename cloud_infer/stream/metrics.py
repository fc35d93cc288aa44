"""The fan-out's metrics through the OpenTelemetry API (attribute ``shadowdesk.consumer``).

Lag is a set of synchronous gauges refreshed every ``metrics_interval_s``: an observable gauge's
callback would be registered once per process, and tests run several fan-outs in one.
"""

from __future__ import annotations

from opentelemetry import metrics

from cloud_infer.stream.protocol import ConsumerLag

CONSUMER = "shadowdesk.consumer"


class StreamMetrics:
    def __init__(self, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter(__name__)
        self.lag_events = meter.create_gauge(
            "shadowdesk.stream.lag.events",
            unit="{event}",
            description="Committed events a consumer has not handled yet, summed over sessions.",
        )
        self.lag_seconds = meter.create_gauge(
            "shadowdesk.stream.lag.seconds",
            unit="s",
            description="Age of the oldest committed batch a consumer has not handled yet.",
        )
        self.queued = meter.create_gauge(
            "shadowdesk.stream.queued",
            unit="{event}",
            description="Committed events held in memory for a consumer.",
        )
        self.delivered = meter.create_counter(
            "shadowdesk.stream.delivered",
            unit="{event}",
            description="Events handed to a consumer, by source (memory or log).",
        )
        self.delay = meter.create_histogram(
            "shadowdesk.stream.delay",
            unit="s",
            description="Commit of a batch to a consumer having handled it.",
        )
        self.failures = meter.create_counter(
            "shadowdesk.stream.failures", unit="{call}", description="Consumer calls that raised."
        )
        self.overflows = meter.create_counter(
            "shadowdesk.stream.overflows",
            unit="{batch}",
            description="Committed batches a consumer had no room for in memory (read from the log later).",
        )

    def publish(self, lag: ConsumerLag) -> None:
        attributes = {CONSUMER: lag.consumer}
        self.lag_events.set(lag.events_behind, attributes)
        self.lag_seconds.set(lag.seconds_behind, attributes)
        self.queued.set(lag.queued_events, attributes)
