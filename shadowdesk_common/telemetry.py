"""OpenTelemetry set-up, done once by each entrypoint (server, agent, demo); libraries use only the API.

Exporters are chosen by ``SHADOWDESK_OTEL_EXPORTER``: ``none`` (default; tests), ``console`` (stderr) or
``otlp`` (gRPC to ``OTEL_EXPORTER_OTLP_ENDPOINT``, the standard OpenTelemetry variable). Logs from the
standard ``logging`` module go to stderr always and, with an exporter, through OpenTelemetry too, with the
active trace and span ids attached. Both log handlers and the span exporter scrub credentials
(``shadowdesk_common.redaction``).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    ConsoleLogRecordExporter,
    LogRecordExporter,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shadowdesk_common.redaction import RedactingFilter, RedactingSpanExporter

ExporterKind = Literal["none", "console", "otlp"]


class TelemetrySettings(BaseSettings):
    """Telemetry configuration shared by every Shadowdesk process (env prefix ``SHADOWDESK_OTEL_``)."""

    model_config = SettingsConfigDict(env_prefix="SHADOWDESK_OTEL_")

    exporter: ExporterKind = Field("none", description="none | console | otlp")
    prometheus: bool = Field(
        False,
        description="Also keep the metrics for a Prometheus scrape (the server's `GET /metrics`, admin "
        "token), whatever the exporter.",
    )
    metric_interval_s: float = Field(30.0, gt=0, description="How often metrics are exported.")
    log_level: str = Field("INFO", description="Level of the stderr and OpenTelemetry log handlers.")


@dataclass
class Telemetry:
    """Handles to the providers an entrypoint installed, so it can flush them on exit."""

    providers: list[TracerProvider | MeterProvider | LoggerProvider] = field(default_factory=list)

    def shutdown(self) -> None:
        for provider in self.providers:
            provider.shutdown()


def _exporters(kind: ExporterKind) -> tuple[SpanExporter, MetricExporter, LogRecordExporter]:
    if kind == "console":
        return (
            ConsoleSpanExporter(out=sys.stderr),
            ConsoleMetricExporter(out=sys.stderr),
            ConsoleLogRecordExporter(out=sys.stderr),
        )
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(), OTLPMetricExporter(), OTLPLogExporter()


def configure_telemetry(service_name: str, settings: TelemetrySettings | None = None) -> Telemetry:
    """Install logging and, unless the exporter is ``none``, OpenTelemetry providers for this process."""
    settings = settings or TelemetrySettings()
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    telemetry = Telemetry()
    resource = Resource.create({"service.name": service_name})
    readers: list[MetricReader] = []
    if settings.prometheus:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        readers.append(PrometheusMetricReader())
    if settings.exporter == "none":
        _scrub_log_handlers()
        if readers:
            meter_provider = MeterProvider(resource=resource, metric_readers=readers)
            metrics.set_meter_provider(meter_provider)
            telemetry.providers = [meter_provider]
        return telemetry
    span_exporter, metric_exporter, log_exporter = _exporters(settings.exporter)

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(span_exporter)))
    trace.set_tracer_provider(tracer_provider)

    reader = PeriodicExportingMetricReader(
        metric_exporter, export_interval_millis=int(settings.metric_interval_s * 1000)
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader, *readers])
    metrics.set_meter_provider(meter_provider)

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    set_logger_provider(logger_provider)
    logging.getLogger().addHandler(LoggingHandler(level=level, logger_provider=logger_provider))
    _scrub_log_handlers()

    telemetry.providers = [tracer_provider, meter_provider, logger_provider]
    return telemetry


# Loggers that print message payloads at DEBUG (uvicorn hands its logger to the websocket library,
# which logs every frame: a user's question, screen text): never below INFO, whatever the level.
_PAYLOAD_LOGGERS = ("uvicorn.error", "websockets", "hpack", "httpcore")


def _scrub_log_handlers() -> None:
    for name in _PAYLOAD_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
