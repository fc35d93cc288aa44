"""uvicorn as this server runs it: TLS, connection limits, and a deadline on request headers.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits forever for the first
request's headers, so a client that connects and then trickles bytes (slowloris) holds a connection
and a file descriptor indefinitely. ``HeaderDeadlineProtocol`` closes a connection whose headers are
not complete within ``http_header_timeout_s``; bodies are bounded by ``cloud_infer.http_guard``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cloud_infer.config import ServerSettings

_MAX_WS_MESSAGE = 64 * 1024


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that drops a connection whose request headers take too long."""

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this keep-alive connection gets the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expire(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


class HttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: ``serve`` owns SIGTERM/SIGINT for both servers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_server(app: Any, settings: ServerSettings) -> HttpServer:
    """The HTTP server for ``app`` with TLS (when configured) and every limit from ``settings``."""
    protocol = type(
        "ConfiguredHeaderDeadlineProtocol",
        (HeaderDeadlineProtocol,),
        {"header_timeout_s": settings.http_header_timeout_s},
    )
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        http=protocol,
        log_config=None,
        access_log=False,  # http_guard writes one without query strings
        lifespan="off",
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        timeout_keep_alive=settings.http_keepalive_s,
        limit_concurrency=settings.http_max_connections,
        ws_max_size=_MAX_WS_MESSAGE,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        server_header=False,
    )
    return HttpServer(config)
