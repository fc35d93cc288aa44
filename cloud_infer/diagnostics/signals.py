"""A session's recent metrics: the samples the agent's ``SystemMetrics`` events carry, kept for a window."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from protos.shadowdesk.v1 import ingest_pb2 as pb

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Sample:
    """One metrics sample; ``t`` in seconds since the Unix epoch (the desktop's clock)."""

    t: float
    cpu_percent: float
    memory_percent: float
    disk_used_percent: float
    load_1m: float

    @classmethod
    def from_event(cls, event: pb.Event) -> Sample:
        m = event.metrics
        memory = 100.0 * m.memory_used_bytes / m.memory_total_bytes if m.memory_total_bytes else 0.0
        return cls(
            t=event.time_unix_nano / NS_PER_S,
            cpu_percent=float(m.cpu_percent),
            memory_percent=memory,
            disk_used_percent=float(m.disk_used_percent),
            load_1m=float(m.load_1m),
        )

    def value(self, metric: str) -> float:
        value: float = getattr(self, metric)
        return value


class Series:
    """The samples of one session within ``window_s`` of its newest, oldest first."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._samples: deque[Sample] = deque()

    def add(self, sample: Sample) -> bool:
        """Keep ``sample``; False (and nothing kept) when it is not newer than the last one (a replay)."""
        if self._samples and sample.t <= self._samples[-1].t:
            return False
        self._samples.append(sample)
        while self._samples and self._samples[0].t < sample.t - self._window_s:
            self._samples.popleft()
        return True

    @property
    def samples(self) -> list[Sample]:
        return list(self._samples)

    @property
    def newest(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    def before(self, t: float) -> list[Sample]:
        """Samples before ``t``."""
        return [s for s in self._samples if s.t < t]
