"""Serve the console: ``shadowdesk console`` and the ``shadowdesk up`` demo call ``serve``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uvicorn

from admin_console.app import build_app
from admin_console.config import ConsoleSettings

logger = logging.getLogger(__name__)


class _OwnedSignals(uvicorn.Server):
    """A server whose caller owns SIGINT/SIGTERM (the demo stops its server, agent and console together)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: ConsoleSettings, stop: asyncio.Event | None = None) -> None:
    """Until ``stop`` is set (or, without one, until uvicorn's own SIGINT/SIGTERM handling ends it)."""
    config = uvicorn.Config(
        build_app(settings), host=settings.host, port=settings.port, log_level="warning", access_log=False
    )
    if stop is None:
        await uvicorn.Server(config).serve()
        return
    server = _OwnedSignals(config)
    task = asyncio.create_task(server.serve(), name="console")
    with contextlib.suppress(asyncio.CancelledError):
        await stop.wait()
    server.should_exit = True
    await task
    logger.info("the console stopped")
