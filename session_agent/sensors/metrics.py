"""System metrics sensor: CPU, memory, load, disk, network and process counts via psutil."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import psutil

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.sensors.base import Emit, new_event


class MetricsSensor:
    name = "system_metrics"

    def __init__(
        self, emit: Emit, *, interval_s: float, spool_depth: Callable[[], int], disk_path: str = "/"
    ) -> None:
        self._emit = emit
        self._interval_s = interval_s
        self._spool_depth = spool_depth
        self._disk_path = disk_path

    def run(self, stop: threading.Event) -> None:
        psutil.cpu_percent(interval=None)  # the first call only sets the baseline of the next one
        while not stop.wait(self._interval_s):
            self._emit(self.sample())

    def sample(self) -> pb.Event:
        event = new_event()
        memory = psutil.virtual_memory()
        net = psutil.net_io_counters()
        metrics = event.metrics
        metrics.cpu_percent = psutil.cpu_percent(interval=None)
        metrics.memory_used_bytes = memory.total - memory.available
        metrics.memory_total_bytes = memory.total
        metrics.load_1m = os.getloadavg()[0]
        metrics.disk_used_percent = psutil.disk_usage(self._disk_path).percent
        if net is not None:
            metrics.net_rx_bytes = net.bytes_recv
            metrics.net_tx_bytes = net.bytes_sent
        metrics.process_count = len(psutil.pids())
        metrics.spool_depth = self._spool_depth()
        return event
