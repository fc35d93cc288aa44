"""Ingest metrics through the OpenTelemetry API; the entrypoint decides where they go."""

from __future__ import annotations

from opentelemetry import metrics

meter = metrics.get_meter(__name__)


class IngestMetrics:
    def __init__(self) -> None:
        self.events = meter.create_counter(
            "shadowdesk.ingest.events",
            unit="{event}",
            description="Events durably stored (duplicates excluded).",
        )
        self.bytes = meter.create_counter(
            "shadowdesk.ingest.bytes", unit="By", description="Serialized size of accepted batches."
        )
        self.batches = meter.create_counter(
            "shadowdesk.ingest.batches", unit="{batch}", description="Batches acknowledged."
        )
        self.duplicates = meter.create_counter(
            "shadowdesk.ingest.duplicates", unit="{event}", description="Events dropped as already stored."
        )
        self.rejected = meter.create_counter(
            "shadowdesk.ingest.rejected", unit="{stream}", description="Streams ended by an error, by reason."
        )
        self.store_write_duration = meter.create_histogram(
            "shadowdesk.ingest.store_write.duration", unit="s", description="Time to durably store one batch."
        )
