"""The websocket <-> VNC byte relay of one thin client: RFB passes through unchanged, both ways.

Every binary message from the browser goes to the VNC server as it is, and every read from the server
goes to the browser as one binary message; a text message is a protocol error (1003). Each write has a
deadline (a peer that stops reading is dropped), and a relay with no byte either way for
``idle_timeout_s`` is closed. Bytes are counted as OpenTelemetry metrics by direction only: no user,
session or content reaches telemetry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from fastapi import WebSocket, WebSocketDisconnect
from opentelemetry import metrics
from starlette.websockets import WebSocketState

from cloud_infer.desktop.config import DesktopSettings
from cloud_infer.live_socket import WS_UNSUPPORTED_DATA, cancel_all

logger = logging.getLogger(__name__)
meter = metrics.get_meter(__name__)

WS_NORMAL = 1000
WS_GOING_AWAY = 1001
WS_DESKTOP_GONE = 1014  # bad gateway: the VNC server closed or failed
_BYTES = meter.create_counter(
    "shadowdesk.desktop.bytes", unit="By", description="Bytes relayed between thin clients and desktops."
)
_MESSAGES = meter.create_counter(
    "shadowdesk.desktop.messages", unit="{message}", description="Websocket messages relayed, by direction."
)
_OPEN = meter.create_up_down_counter(
    "shadowdesk.desktop.relays", unit="{relay}", description="Thin-client relays open now."
)
_CLOSED = meter.create_counter(
    "shadowdesk.desktop.relays_closed", unit="{relay}", description="Relays ended, by why."
)
TO_BROWSER = {"direction": "to_browser"}
TO_DESKTOP = {"direction": "to_desktop"}


class RfbRelay:
    """Relays one accepted websocket and one VNC connection until either side ends."""

    def __init__(
        self,
        websocket: WebSocket,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        settings: DesktopSettings,
    ) -> None:
        self._websocket = websocket
        self._reader = reader
        self._writer = writer
        self._settings = settings
        self._last_byte = time.monotonic()
        self.bytes_to_browser = 0
        self.bytes_to_desktop = 0

    async def run(self) -> None:
        _OPEN.add(1)
        tasks = [
            asyncio.create_task(self._to_desktop(), name="desk-to-desktop"),
            asyncio.create_task(self._to_browser(), name="desk-to-browser"),
            asyncio.create_task(self._idle(), name="desk-idle"),
        ]
        why = "error"
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            first = done.pop()
            why = first.get_name().removeprefix("desk-")
            if not first.cancelled() and (exc := first.exception()) is not None:
                logger.info("desktop relay ended (%s): %s", why, type(exc).__name__)
        finally:
            await cancel_all(tasks)
            await self._close(WS_GOING_AWAY, "the relay ended")  # a deadline missed or an error
            self._writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(self._settings.send_timeout_s):
                    await self._writer.wait_closed()
            _OPEN.add(-1)
            _CLOSED.add(1, {"side": why})

    async def _to_desktop(self) -> None:
        """Browser -> VNC server; returns when the browser goes away."""
        while True:
            message = await self._websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                await self._close(WS_UNSUPPORTED_DATA, "RFB travels in binary messages")
                return
            self._last_byte = time.monotonic()
            self._writer.write(data)
            async with asyncio.timeout(self._settings.send_timeout_s):
                await self._writer.drain()
            self.bytes_to_desktop += len(data)
            _BYTES.add(len(data), TO_DESKTOP)
            _MESSAGES.add(1, TO_DESKTOP)

    async def _to_browser(self) -> None:
        """VNC server -> browser; returns (closing the websocket) when the server ends the connection."""
        while True:
            data = await self._reader.read(self._settings.read_chunk_bytes)
            if not data:
                await self._close(WS_DESKTOP_GONE, "the desktop closed the connection")
                return
            self._last_byte = time.monotonic()
            async with asyncio.timeout(self._settings.send_timeout_s):
                await self._websocket.send_bytes(data)
            self.bytes_to_browser += len(data)
            _BYTES.add(len(data), TO_BROWSER)
            _MESSAGES.add(1, TO_BROWSER)

    async def _idle(self) -> None:
        limit = self._settings.idle_timeout_s
        while (left := self._last_byte + limit - time.monotonic()) > 0:
            await asyncio.sleep(left)
        await self._close(WS_GOING_AWAY, "idle")

    async def _close(self, code: int, reason: str) -> None:
        if self._websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # already closing or gone
                await self._websocket.close(code=code, reason=reason)
