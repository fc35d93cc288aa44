"""What every sensor shares: the thread-safe emit callback and the sensor protocol."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from protos.shadowdesk.v1 import ingest_pb2 as pb

# Called from sensor threads; must be thread-safe and must not block.
Emit = Callable[[pb.Event], None]


class Sensor(Protocol):
    name: str

    def run(self, stop: threading.Event) -> None:
        """Sense until ``stop`` is set; raise SensorError when the source cannot be reached."""


class FocusState:
    """The focused window id, written by the window sensor and read by the frame sensor."""

    def __init__(self) -> None:
        self.window_id = 0


def new_event() -> pb.Event:
    """An event stamped with the current wall-clock time."""
    return pb.Event(time_unix_nano=time.time_ns())
