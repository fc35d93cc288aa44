"""The agent: sensors (threads) → in-memory buffer → spool (group commit) → sender (gRPC stream), and
the cloud's commands: sender → executor (its own threads) → spool.

``run_agent`` runs until ``stop`` is set or SIGTERM/SIGINT arrives, then stops the sensors, commits
what they sensed to the spool, stops the sender and closes the spool; unsent events wait in the spool
for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable

from opentelemetry import metrics, trace

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.config import (
    SENSOR_ACCESSIBILITY,
    SENSOR_APPS,
    SENSOR_DESKTOP_HEALTH,
    SENSOR_FRAMES,
    SENSOR_PROCESS_FAULTS,
    SENSOR_SELECTION,
    SENSOR_SYSTEM_METRICS,
    SENSOR_WINDOW_FOCUS,
    AgentSettings,
)
from session_agent.errors import AgentError, SensorError, SpoolError
from session_agent.executor import open_executor
from session_agent.privacy import PrivacyRules
from session_agent.send_policy import SendPolicy
from session_agent.sender import Sender
from session_agent.sensors.accessibility import AccessibilitySensor
from session_agent.sensors.base import FocusState, Sensor, new_event
from session_agent.sensors.crashes import ProcessFaultSensor
from session_agent.sensors.desktop import DesktopSensor
from session_agent.sensors.frames import FrameSensor
from session_agent.sensors.health import DesktopHealth
from session_agent.sensors.metrics import MetricsSensor
from session_agent.sensors.selection import SelectionSensor
from session_agent.sensors.window import WindowSensor
from session_agent.spool import AsyncSpool

logger = logging.getLogger(__name__)

BUFFER_MAX_EVENTS = 10_000
SENSOR_RESTART_S = 5.0
SENSOR_JOIN_S = 5.0


class EventBuffer:
    """Events sensed since the last commit; filled by sensor threads, drained by the flush loop.

    Bounded so a stuck disk cannot grow memory without limit: beyond ``max_events`` new events are
    dropped, counted and logged.
    """

    def __init__(self, max_events: int = BUFFER_MAX_EVENTS) -> None:
        self.max_events = max_events
        self.dropped = 0
        self._events: list[pb.Event] = []
        self._lock = threading.Lock()

    def emit(self, event: pb.Event) -> None:
        with self._lock:
            if len(self._events) < self.max_events:
                self._events.append(event)
                return
            self.dropped += 1
            dropped = self.dropped
        if dropped == 1 or dropped % 1000 == 0:
            logger.warning("event buffer full (%d events): %d events dropped", self.max_events, dropped)

    def drain(self) -> list[pb.Event]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def requeue(self, events: list[pb.Event]) -> None:
        """Put back events a failed commit did not store, ahead of newer ones."""
        with self._lock:
            room = max(0, self.max_events - len(self._events))
            self._events[:0] = events[:room]
            self.dropped += len(events[room:])


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        *,
        tracer: trace.Tracer | None = None,
        meter: metrics.Meter | None = None,
    ) -> None:
        self.settings = settings
        self.buffer = EventBuffer()
        self.focus = FocusState()
        self.privacy = PrivacyRules.from_settings(settings)
        self.health = DesktopHealth(self.buffer.emit)
        self._send_policy = SendPolicy(settings.routine_send_interval_s)
        self._tracer = tracer
        self._meter = meter

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        spool = await AsyncSpool.open(settings.spool_path, settings.session_id, settings.spool_max_bytes)
        loop = asyncio.get_running_loop()
        executor = open_executor(
            settings, spool.spool, self.privacy, notify=lambda: _wake(loop, sender.notify), meter=self._meter
        )
        sender = Sender(
            settings,
            spool,
            tracer=self._tracer,
            meter=self._meter,
            on_command=executor.submit,
            capabilities=executor.capabilities,
            link=self.health.link,
            on_connected=lambda: self.health.logon.reached(pb.LogonPhase.PHASE_AGENT_CONNECTED),
        )
        self.buffer.emit(self._session_info())
        # Commands a previous run left unfinished are answered INTERRUPTED before anything is sent.
        await asyncio.to_thread(executor.start)
        sensor_stop = threading.Event()
        threads = [
            threading.Thread(
                target=_supervise, args=(sensor, sensor_stop), name=f"sensor-{sensor.name}", daemon=True
            )
            for sensor in self._sensors(spool)
        ]
        for thread in threads:
            thread.start()
        sender_stop = asyncio.Event()
        tasks = {
            asyncio.create_task(sender.run(sender_stop), name="sender"),
            asyncio.create_task(self._flush_loop(spool, sender), name="spool-flush"),
        }
        stop_task = asyncio.create_task(stop.wait(), name="agent-stop")
        logger.info(
            "agent for session %s started: sensors %s, sending to %s",
            settings.session_id,
            sorted(settings.sensors),
            settings.server,
        )
        try:
            done, _ = await asyncio.wait({stop_task, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stop_task}:
                error = task.exception()
                raise AgentError(f"agent task {task.get_name()} ended unexpectedly: {error!r}") from error
        finally:
            sensor_stop.set()
            await asyncio.to_thread(_join_all, threads)
            await asyncio.to_thread(executor.stop)
            sender_stop.set()
            stop_task.cancel()
            for task in tasks:
                if task.get_name() == "spool-flush":
                    task.cancel()
            await asyncio.gather(*tasks, stop_task, return_exceptions=True)
            await self._flush(spool, sender)
            await spool.close()
            logger.info(
                "agent stopped: %d events left in the spool, %d frames skipped by the spool bound",
                spool.depth,
                spool.spool.dropped_frames,
            )

    def _session_info(self) -> pb.Event:
        event = new_event()
        event.session_info.hostname = socket.gethostname()[:255]
        event.session_info.image = self.settings.image
        event.session_info.agent_version = self.settings.agent_version
        return event

    def _sensors(self, spool: AsyncSpool) -> list[Sensor]:
        settings, emit = self.settings, self.buffer.emit
        sensors: list[Sensor] = []
        if settings.sensors & {SENSOR_WINDOW_FOCUS, SENSOR_APPS}:
            sensors.append(
                WindowSensor(
                    settings.display,
                    emit,
                    poll_s=settings.window_poll_s,
                    focus=self.focus,
                    emit_focus=SENSOR_WINDOW_FOCUS in settings.sensors,
                    emit_apps=SENSOR_APPS in settings.sensors,
                    privacy=self.privacy,
                    health=self.health,
                )
            )
        if SENSOR_FRAMES in settings.sensors:
            sensors.append(
                FrameSensor(
                    settings.display,
                    emit,
                    interval_s=settings.frame_interval_s,
                    max_width=settings.frame_max_width,
                    quality=settings.frame_quality,
                    min_distance=settings.dhash_min_distance,
                    max_bytes=settings.batch_max_bytes,
                    focused_window=lambda: self.focus.window_id,
                    privacy=self.privacy,
                )
            )
        if SENSOR_ACCESSIBILITY in settings.sensors:
            sensors.append(
                AccessibilitySensor(
                    settings.display,
                    emit,
                    interval_s=settings.accessibility_interval_s,
                    poll_s=settings.window_poll_s,
                    privacy=self.privacy,
                )
            )
        if SENSOR_SELECTION in settings.sensors:
            sensors.append(
                SelectionSensor(
                    settings.display,
                    emit,
                    max_chars=settings.selection_max_chars,
                    debounce_s=settings.selection_debounce_s,
                    timeout_s=settings.selection_timeout_s,
                    poll_s=settings.window_poll_s,
                    privacy=self.privacy,
                )
            )
        if SENSOR_SYSTEM_METRICS in settings.sensors:
            sensors.append(
                MetricsSensor(
                    emit,
                    interval_s=settings.metrics_interval_s,
                    send_interval_s=settings.metrics_send_interval_s,
                    spool_depth=lambda: spool.depth,
                    health=self.health,
                    top_processes=settings.top_processes,
                    top_interval_s=settings.top_interval_s,
                )
            )
        if SENSOR_DESKTOP_HEALTH in settings.sensors:
            sensors.append(
                DesktopSensor(
                    settings.display,
                    emit,
                    health=self.health,
                    hang_after_s=settings.hang_after_s,
                    ping_interval_s=settings.ping_interval_s,
                    probe_interval_s=settings.probe_interval_s,
                )
            )
        if SENSOR_PROCESS_FAULTS in settings.sensors:
            sensors.append(ProcessFaultSensor(settings.display, emit, health=self.health))
        return sensors

    async def _flush_loop(self, spool: AsyncSpool, sender: Sender) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_interval_s)
            await self._flush(spool, sender)

    async def _flush(self, spool: AsyncSpool, sender: Sender) -> None:
        events = self.buffer.drain()
        if not events:
            return
        try:
            await spool.append(events)
        except SpoolError:
            logger.exception("cannot commit %d events to the spool; retrying next flush", len(events))
            self.buffer.requeue(events)
            return
        if self._send_policy.send_now(events, time.monotonic()):
            sender.notify()


def _supervise(sensor: Sensor, stop: threading.Event) -> None:
    """Run a sensor until ``stop``; restart it after a pause when it fails."""
    while not stop.is_set():
        try:
            sensor.run(stop)
            return
        except SensorError as exc:
            logger.error("sensor %s failed: %s; restarting in %.0fs", sensor.name, exc, SENSOR_RESTART_S)
        except Exception:
            logger.exception("sensor %s crashed; restarting in %.0fs", sensor.name, SENSOR_RESTART_S)
        stop.wait(SENSOR_RESTART_S)


def _wake(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """Run ``callback`` on ``loop`` from any thread; nothing once the loop is closed."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)


def _join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(SENSOR_JOIN_S)
        if thread.is_alive():
            logger.warning("sensor thread %s did not stop within %.0fs", thread.name, SENSOR_JOIN_S)


async def run_agent(settings: AgentSettings, stop: asyncio.Event | None = None) -> None:
    """Run the agent until ``stop`` is set or the process gets SIGTERM/SIGINT."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread: the caller owns signals and sets ``stop``
    try:
        await Agent(settings).run(stop)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
