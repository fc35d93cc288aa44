"""Thumbnails are decoded in turns between users on at most half the cores, so one user's flood of
frame reads leaves the other cores to everyone else (the noisy-neighbour bench's frames row)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from cloud_infer.recall.config import usable_cores
from cloud_infer.timeline import service as timeline_service
from cloud_infer.timeline.service import TimelineService
from recall_store.event_log import EventLog
from tests.support.cloud import FaultyStore, png

DECODE_S = 0.05


async def test_one_users_flood_of_thumbnails_uses_half_the_cores_and_another_user_gets_a_turn(
    store: FaultyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for user in ("mallory", "bob"):
        await store.put(user, "frames/desk-1/000000000002.png", png(), "image/png")
    running, most = 0, 0
    lock = threading.Lock()
    real = timeline_service._thumbnail

    def slow_thumbnail(data: bytes) -> bytes:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(DECODE_S)
            return real(data)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(timeline_service, "_thumbnail", slow_thumbnail)
    timeline = TimelineService(EventLog(store))
    finished: list[str] = []

    async def thumbnail(user: str) -> None:
        image, content_type = await timeline.frame(user, "desk-1", "000000000002.png", thumbnail=True)
        assert content_type == "image/jpeg" and image.startswith(b"\xff\xd8")
        finished.append(user)

    flood = [asyncio.create_task(thumbnail("mallory")) for _ in range(12)]
    await asyncio.sleep(DECODE_S / 2)  # mallory's twelve are queued before bob asks
    await asyncio.gather(thumbnail("bob"), *flood)
    workers = max(1, usable_cores() // 2)
    assert most == workers, f"{most} decodes ran at once on {usable_cores()} cores"
    assert finished.index("bob") <= 2 * workers, f"bob waited behind mallory's flood: {finished}"
