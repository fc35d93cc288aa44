"""An emit target that keeps what sensors emit, for the session agent's tests."""

from __future__ import annotations

import threading

from protos.shadowdesk.v1 import ingest_pb2 as pb


class Collected:
    """A thread-safe emit target."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[pb.Event] = []

    def __call__(self, event: pb.Event) -> None:
        with self._lock:
            self._events.append(event)

    def of(self, kind: str) -> list[pb.Event]:
        with self._lock:
            return [e for e in self._events if e.WhichOneof("kind") == kind]
