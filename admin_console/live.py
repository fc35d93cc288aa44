"""The live feed of one browser page over the console's websocket: every ``poll_interval_s`` the fleet's
sessions and open incidents, and the recent series of the session the page watches, as the signed-in
user may read them (the cloud decides, with that user's token).

The page names what it watches by sending ``{"watch": "<pseudonym>"}`` (or ``null``); the loop waits
for such a message at most until the next refresh, so a refresh is never late by more than a poll.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.websockets import WebSocket

from admin_console.cloud import CloudClient
from admin_console.errors import CloudError
from admin_console.identity import ConsoleUser

_SUBJECT = re.compile(r"^s-[0-9a-f]{16}$")
SERIES_SECONDS = "300"


class LiveFeed:
    def __init__(self, socket: WebSocket, cloud: CloudClient, user: ConsoleUser, interval_s: float) -> None:
        self._socket = socket
        self._cloud = cloud
        self._user = user
        self._interval_s = interval_s
        self._watch: str | None = None

    async def run(self) -> None:
        """Until the page goes away (WebSocketDisconnect)."""
        while True:
            await self._socket.send_json(await self._snapshot())
            try:
                async with asyncio.timeout(self._interval_s):
                    message = await self._socket.receive_json()
            except TimeoutError:
                continue
            watch = message.get("watch") if isinstance(message, dict) else None
            self._watch = watch if isinstance(watch, str) and _SUBJECT.fullmatch(watch) else None

    async def _snapshot(self) -> dict[str, Any]:
        try:
            sessions = await self._cloud.get(self._user, "sessions")
            incidents = await self._cloud.get(self._user, "incidents", {"state": "open"})
            snapshot: dict[str, Any] = {
                "sessions": sessions.body.get("sessions", []) if sessions.status == 200 else [],
                # Without their evidence (up to 600 points each): the incident page reads that itself.
                "incidents": [
                    {k: v for k, v in incident.items() if k != "evidence"}
                    for incident in (incidents.body.get("incidents", []) if incidents.status == 200 else [])
                ],
                "error": "" if sessions.status == incidents.status == 200 else "the cloud refused",
            }
            if self._watch is not None:
                series = await self._cloud.get(
                    self._user, f"sessions/{self._watch}/series", {"seconds": SERIES_SECONDS}
                )
                snapshot["series"] = series.body if series.status == 200 else None
        except CloudError as exc:
            snapshot = {"sessions": [], "incidents": [], "error": str(exc)}
        return snapshot
