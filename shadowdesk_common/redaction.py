"""Credentials never reach a log line or a span: a logging filter and a span exporter that scrub them.

Tokens do not travel in URLs or get logged on purpose; this is the second line, for what a library
prints (an exception text, a third-party debug line). It scrubs JWTs (tokens, login tickets), bearer
headers and ``token=``/``ticket=``/``login=`` parameters, replacing each with ``[redacted]``, and drops
span attributes that hold a whole query string or URL: a search query is the user's own private text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

REDACTED = "[redacted]"
_URL_ATTRIBUTES = frozenset({"url.query", "url.full", "http.url", "http.target"})
_SECRETS = re.compile(
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"  # a JWT (header always starts {")
    r"|(?i:bearer)\s+[^\s'\",]+"
    r"|(?i:\b(?:access_token|token|ticket|login)=)[^&\s'\"#]+"
)


def redact(text: str) -> str:
    return _SECRETS.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Formats each record once, scrubbed; a traceback is folded into the scrubbed message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
        record.msg, record.args = redact(message), None
        return True


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, tuple | list):
        return type(value)(_clean(item) for item in value)
    return value


class RedactingSpanExporter(SpanExporter):
    """Passes spans on to ``inner`` with secrets scrubbed from names, attributes and event attributes."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([self._scrubbed(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    @staticmethod
    def _scrubbed(span: ReadableSpan) -> ReadableSpan:
        return ReadableSpan(
            name=redact(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes={
                key: _clean(value)
                for key, value in (span.attributes or {}).items()
                if key not in _URL_ATTRIBUTES
            },
            events=[
                Event(e.name, {k: _clean(v) for k, v in (e.attributes or {}).items()}, e.timestamp)
                for e in span.events
            ],
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )
