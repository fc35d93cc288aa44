"""A session's recent signals: the agent's ``SystemMetrics`` samples and its process events (app faults,
app starts and exits), and the thin client's experience reports, kept for a window."""

from __future__ import annotations

import dataclasses
import statistics
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from protos.shadowdesk.v1 import ingest_pb2 as pb

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Consumer:
    """One of the top processes of a sample: its name and app, never its command line."""

    pid: int
    name: str
    app_id: str
    cpu_percent: float  # of one core
    memory_percent: float  # of the desktop's memory

    @property
    def label(self) -> str:
        return f"{self.name or self.app_id or 'a process'} (pid {self.pid})"


def _consumers(usages: list[pb.ProcessUsage], memory_total: int) -> tuple[Consumer, ...]:
    return tuple(
        Consumer(
            pid=u.pid,
            name=u.name,
            app_id=u.app_id,
            cpu_percent=float(u.cpu_percent),
            memory_percent=100.0 * u.rss_bytes / memory_total if memory_total else 0.0,
        )
        for u in usages
    )


@dataclass(frozen=True, slots=True)
class Sample:
    """One metrics sample; ``t`` in seconds since the Unix epoch (the desktop's clock).

    Rates (``swap_pages_per_s``) are over the interval since the session's previous sample; the fields
    after ``load_1m`` are 0 (or empty) from an agent that does not sense them."""

    t: float
    cpu_percent: float
    memory_percent: float
    disk_used_percent: float
    load_1m: float
    swap_percent: float = 0.0
    swap_pages_per_s: float = 0.0
    # The slower of the newest send-to-Ack time and the oldest unacknowledged batch's age.
    link_ms: float = 0.0
    probe_ms: float = 0.0
    oom_kills: int = 0
    swap_pages: int = 0  # cumulative, for the next sample's rate
    top_cpu: tuple[Consumer, ...] = ()
    top_memory: tuple[Consumer, ...] = ()

    @classmethod
    def from_event(cls, event: pb.Event, previous: Sample | None = None) -> Sample:
        m = event.metrics
        t = event.time_unix_nano / NS_PER_S
        memory = 100.0 * m.memory_used_bytes / m.memory_total_bytes if m.memory_total_bytes else 0.0
        swap = 100.0 * m.swap_used_bytes / m.swap_total_bytes if m.swap_total_bytes else 0.0
        swap_pages = m.swap_in_pages + m.swap_out_pages
        rate = 0.0
        if previous is not None and t > previous.t and swap_pages >= previous.swap_pages:
            rate = (swap_pages - previous.swap_pages) / (t - previous.t)
        return cls(
            t=t,
            cpu_percent=float(m.cpu_percent),
            memory_percent=memory,
            disk_used_percent=float(m.disk_used_percent),
            load_1m=float(m.load_1m),
            swap_percent=swap,
            swap_pages_per_s=rate,
            link_ms=max(float(m.cloud_rtt_ms), float(m.unacked_ms)),
            probe_ms=float(m.desktop_probe_ms),
            oom_kills=m.oom_kills,
            swap_pages=swap_pages,
            top_cpu=_consumers(list(m.top_cpu), m.memory_total_bytes),
            top_memory=_consumers(list(m.top_memory), m.memory_total_bytes),
        )

    def value(self, metric: str) -> float:
        value: float = getattr(self, metric)
        return value


@dataclass(frozen=True, slots=True)
class ExperienceSample:
    """What the user's thin client measured over ``window_s`` (``cloud_infer.diagnostics.experience``);
    ``t`` is the cloud's clock when the report arrived (a client's clock is not trusted), and a figure
    the window had nothing to measure by (no echo answered, no input, no frame) is None."""

    t: float
    window_s: float
    fps: float
    bytes_down_per_s: float
    bytes_up_per_s: float
    inputs: int
    rtt_ms: float | None = None
    frame_delay_ms: float | None = None
    input_latency_ms: float | None = None

    @property
    def frozen(self) -> bool:
        """Input went to the desktop and not one frame came back in the whole window."""
        return self.inputs > 0 and self.fps == 0

    @property
    def lag_ms(self) -> float:
        """The longest the user waited: for the network's round trip, or for their input to show (a
        frozen window counts as its whole length)."""
        waits = [self.rtt_ms or 0.0, self.input_latency_ms or 0.0]
        if self.frozen:
            waits.append(self.window_s * 1000)
        return max(waits)

    def figures(self) -> dict[str, float]:
        """The measured figures by name, and ``lag_ms``; numbers only, unmeasured ones left out."""
        found = {
            "lag_ms": self.lag_ms,
            "fps": self.fps,
            "bytes_down_per_s": self.bytes_down_per_s,
            "bytes_up_per_s": self.bytes_up_per_s,
            "inputs": float(self.inputs),
            "window_s": self.window_s,
        }
        for name in ("rtt_ms", "frame_delay_ms", "input_latency_ms"):
            value = getattr(self, name)
            if value is not None:
                found[name] = float(value)
        return found


@dataclass(frozen=True, slots=True)
class ProcessEvent:
    """An app's fault or lifecycle event: ``kind`` is hung, recovered, crashed, oom_killed, started or
    exited, or slow_start (a start the app's baseline judged slow, ``usual_ms`` its usual start)."""

    t: float
    kind: str
    app_id: str
    pid: int
    executable: str
    app_version: str = ""
    signal: int = 0
    core_dumped: bool = False
    hung_ms: int = 0
    startup_ms: int = 0
    rss_bytes: int = 0
    usual_ms: int = 0

    @classmethod
    def from_event(cls, event: pb.Event) -> ProcessEvent | None:
        t = event.time_unix_nano / NS_PER_S
        kind = event.WhichOneof("kind")
        if kind == "app_fault":
            f = event.app_fault
            name = pb.AppFault.Kind.Name(f.kind).removeprefix("KIND_").lower()
            return cls(
                t,
                name,
                f.app_id,
                f.pid,
                f.executable,
                f.app_version,
                f.signal,
                f.core_dumped,
                f.hung_ms,
                rss_bytes=f.rss_bytes,
            )
        if kind == "app":
            a = event.app
            name = pb.AppLifecycle.Kind.Name(a.kind).removeprefix("KIND_").lower()
            return cls(t, name, a.app_id, a.pid, a.executable, a.app_version, startup_ms=a.startup_ms)
        return None


class Series:
    """The samples and process events of one session within ``window_s`` of its newest, oldest first,
    and where the session runs (its ``SessionInfo``); beside them, on the cloud's clock, the thin
    client's experience reports within ``window_s`` of the newest report."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[Sample] = deque()
        self._events: deque[ProcessEvent] = deque()
        self._experience: deque[ExperienceSample] = deque()
        self.hostname = ""
        self.image = ""
        # The rules' baselines by metric: (sample time computed at, (median, spread) or None if too few).
        self.baselines: dict[str, tuple[float, tuple[float, float] | None]] = {}

    def add(self, sample: Sample) -> bool:
        """Keep ``sample``; False (and nothing kept) when it is not newer than the last one (a replay)."""
        if self._samples and sample.t <= self._samples[-1].t:
            return False
        self._samples.append(sample)
        self._trim(sample.t)
        return True

    def add_event(self, event: ProcessEvent) -> bool:
        """Keep ``event``; False when it is not newer than the last one (a replay)."""
        if self._events and event.t <= self._events[-1].t:
            return False
        self._events.append(event)
        self._trim(event.t)
        return True

    def add_experience(self, sample: ExperienceSample) -> None:
        """Keep a client's report; a report from a second tab in the same instant is kept as well."""
        self._experience.append(sample)
        while self._experience and self._experience[0].t < sample.t - self.window_s:
            self._experience.popleft()

    @property
    def experience(self) -> list[ExperienceSample]:
        """The client's reports, oldest first."""
        return list(self._experience)

    def _trim(self, newest: float) -> None:
        for kept in (self._samples, self._events):
            while kept and kept[0].t < newest - self.window_s:
                kept.popleft()

    @property
    def samples(self) -> list[Sample]:
        return list(self._samples)

    def newest_first(self) -> Iterator[Sample]:
        """The samples from the newest back, without copying them."""
        return reversed(self._samples)

    @property
    def events(self) -> list[ProcessEvent]:
        return list(self._events)

    @property
    def newest(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    @property
    def now(self) -> float:
        """The session's newest time: of its newest sample or event."""
        times = [kept[-1].t for kept in (self._samples, self._events) if kept]
        return max(times, default=0.0)

    def before(self, t: float) -> list[Sample]:
        """Samples before ``t``."""
        return [s for s in self._samples if s.t < t]


class AppStarts:
    """Each app's recent start times across the fleet, a baseline per app (and version) over minutes:
    the median and the scaled MAD of its starts within ``window_s``, at most ``max_starts`` of them."""

    def __init__(self, window_s: float, max_starts: int = 200) -> None:
        self._window_s = window_s
        self._max_starts = max_starts
        self._starts: dict[tuple[str, str], deque[tuple[float, int]]] = {}

    def judge(self, event: ProcessEvent, min_samples: int, z: float, floor_ms: float) -> ProcessEvent | None:
        """A slow_start event when ``event`` (a start) is far slower than the app's usual start, judged
        before it joins the history; None otherwise."""
        if event.kind != "started" or event.startup_ms <= 0:
            return None
        key = (event.app_id, event.app_version)
        history = self._starts.setdefault(key, deque(maxlen=self._max_starts))
        while history and history[0][0] < event.t - self._window_s:
            history.popleft()
        values = [ms for _, ms in history]
        history.append((event.t, event.startup_ms))
        if len(values) < min_samples or event.startup_ms < floor_ms:
            return None
        median = statistics.median(values)
        spread = max(1.4826 * statistics.median(abs(v - median) for v in values), 0.1 * median, 1.0)
        if event.startup_ms <= median + z * spread:
            return None
        return dataclasses.replace(event, kind="slow_start", usual_ms=int(median))
