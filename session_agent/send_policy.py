"""When committed events go out: at once, or with the next batch.

A desktop samples its metrics every second, and one batch a second from every desktop is what a fleet's
collector pays for most (each batch is a durable write in the cloud). A sample with nothing near a limit
tells the cloud nothing urgent, so routine samples wait up to ``routine_send_interval_s`` and go out
together, in one batch. Everything else goes out at the next flush: any other event (focus, text,
process faults, command results) and any sample near a limit, so a fault starts reaching the cloud
within a flush of its first sample. The watch levels sit below the cloud's rules (docs/diagnostics.md),
so the samples leading up to a finding are already there when it starts to hold.
"""

from __future__ import annotations

from collections.abc import Sequence

from protos.shadowdesk.v1 import ingest_pb2 as pb

CPU_WATCH_PERCENT = 80.0
MEMORY_WATCH_PERCENT = 85.0
DISK_WATCH_PERCENT = 90.0
PROBE_WATCH_MS = 250.0


class SendPolicy:
    """Decides, per flush, whether to wake the sender now."""

    def __init__(self, routine_send_interval_s: float) -> None:
        self._interval_s = routine_send_interval_s
        self._last_sent = float("-inf")
        self._oom_kills: int | None = None
        self._swap_out: int | None = None

    def send_now(self, events: Sequence[pb.Event], now: float) -> bool:
        """Whether ``events`` (just committed) should go out now; call once per flush, in order."""
        urgent = [not self._routine(event) for event in events]  # every sample updates the counters
        if any(urgent) or now - self._last_sent >= self._interval_s:
            self._last_sent = now
            return True
        return False

    def _routine(self, event: pb.Event) -> bool:
        if not event.HasField("metrics"):
            return False
        m = event.metrics
        # A counter that moved since the previous sample is news: a process was killed, pages were swapped.
        oom_kills, self._oom_kills = self._oom_kills, m.oom_kills
        swap_out, self._swap_out = self._swap_out, m.swap_out_pages
        if (oom_kills is not None and m.oom_kills > oom_kills) or (
            swap_out is not None and m.swap_out_pages > swap_out
        ):
            return False
        memory = 100.0 * m.memory_used_bytes / m.memory_total_bytes if m.memory_total_bytes else 0.0
        return (
            m.cpu_percent < CPU_WATCH_PERCENT
            and memory < MEMORY_WATCH_PERCENT
            and m.disk_used_percent < DISK_WATCH_PERCENT
            and m.desktop_probe_ms < PROBE_WATCH_MS
        )
