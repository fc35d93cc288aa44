"""Sends the spool to the cloud over one gRPC bidi stream, resuming after every failure.

Per stream: Hello, then Welcome (within ``connect_timeout_s``) whose acked_seq is applied to the spool,
then batches from the spool (at most ``batch_max_events``/``batch_max_bytes``, and the Welcome's limits)
with at most ``max_inflight_batches`` unacknowledged. Each Ack deletes what it covers from the spool.
Any failure (UNAVAILABLE, deadline, ack timeout, end of stream) cancels the stream; the next one
starts after a jittered exponential backoff and resends whatever the new Welcome does not cover, so
nothing is lost and the cloud's dedup on seq drops what it already had. A rejection
(UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, ...) is logged as an error and retried only
after ``rejected_backoff_s``: a fixed token or server may accept the agent later, spinning would not.
Commands the cloud sends on the stream go to ``on_command`` (the executor's intake) in the order they
arrive; Hello advertises the executor's ``capabilities`` beside the sensors.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry import metrics, propagate, trace

from protos.shadowdesk.v1 import ingest_pb2 as pb
from protos.shadowdesk.v1 import ingest_pb2_grpc
from session_agent.config import MAX_BATCH_BYTES, AgentSettings
from session_agent.errors import AckTimeoutError, StreamError, StreamRejectedError, stream_error
from session_agent.sensors.health import LinkStats
from session_agent.spool import AsyncSpool

logger = logging.getLogger(__name__)

_MS = 1000
_ENVELOPE_BYTES = 64 * 1024  # room in a message for the batch framing and trace context


def backoff_delay(attempt: int, initial_s: float, max_s: float) -> float:
    """Exponential delay for the ``attempt``-th consecutive failure, jittered into [d/2, d]."""
    delay = min(max_s, initial_s * 2.0 ** min(attempt, 32))
    return delay * (0.5 + random.random() / 2)


def channel_options(settings: AgentSettings) -> list[tuple[str, int]]:
    return [
        # Ping so a dead link is noticed in ~40 s even when nothing is sent (the server allows 10 s).
        ("grpc.keepalive_time_ms", 30 * _MS),
        ("grpc.keepalive_timeout_ms", 10 * _MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_send_message_length", MAX_BATCH_BYTES + _ENVELOPE_BYTES),
        ("grpc.max_receive_message_length", 4 * 1024 * 1024),
        # The sender does its own retries and backoff; keep the channel's reconnects in step with it.
        ("grpc.enable_retries", 0),
        ("grpc.initial_reconnect_backoff_ms", int(settings.backoff_initial_s * _MS)),
        ("grpc.min_reconnect_backoff_ms", int(settings.backoff_initial_s * _MS)),
        ("grpc.max_reconnect_backoff_ms", int(settings.backoff_max_s * _MS)),
    ]


def create_channel(settings: AgentSettings) -> grpc.aio.Channel:
    options = channel_options(settings)
    if settings.tls_ca is None:
        return grpc.aio.insecure_channel(settings.server, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=settings.tls_ca.read_bytes(),
        private_key=settings.tls_key.read_bytes() if settings.tls_key else None,
        certificate_chain=settings.tls_cert.read_bytes() if settings.tls_cert else None,
    )
    return grpc.aio.secure_channel(settings.server, credentials, options=options)


def translate_rpc_error(exc: grpc.aio.AioRpcError) -> StreamError:
    return stream_error(exc.code(), f"{exc.code().name}: {exc.details()}")


@dataclass
class _InFlight:
    last_seq: int
    sent_at: float


@dataclass
class _StreamState:
    sent_seq: int
    max_events: int
    max_bytes: int
    inflight: deque[_InFlight] = field(default_factory=deque)
    progressed: bool = False
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    sent: asyncio.Event = field(default_factory=asyncio.Event)


class Sender:
    """Streams the spool to the cloud until stopped; see the module docstring."""

    def __init__(
        self,
        settings: AgentSettings,
        spool: AsyncSpool,
        *,
        tracer: trace.Tracer | None = None,
        meter: metrics.Meter | None = None,
        on_command: Callable[[pb.Command], Awaitable[None]] | None = None,
        capabilities: Sequence[str] = (),
        link: LinkStats | None = None,
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self._settings = settings
        # The ops sensors read the link's health here: send-to-Ack times and the oldest batch waiting.
        self.link = link or LinkStats()
        self._on_connected = on_connected
        self._on_command = on_command
        self._capabilities = list(capabilities)
        self._spool = spool
        self._tracer = tracer or trace.get_tracer(__name__)
        meter = meter or metrics.get_meter(__name__)
        self._ack_latency = meter.create_histogram(
            "shadowdesk.agent.ack_latency", unit="s", description="time from sending a batch to its Ack"
        )
        self._bytes_sent = meter.create_counter(
            "shadowdesk.agent.sent_bytes", unit="By", description="serialized batch bytes sent"
        )
        self._events_sent = meter.create_counter(
            "shadowdesk.agent.sent_events", unit="{event}", description="events sent, resends included"
        )
        meter.create_observable_gauge(
            "shadowdesk.agent.spool_depth",
            callbacks=[self._observe_depth],
            unit="{event}",
            description="events in the spool not yet acknowledged",
        )
        self._new_data = asyncio.Event()
        self.stream_attempts = 0
        self.streams_opened = 0
        self.last_error: BaseException | None = None

    def notify(self) -> None:
        """Wake the sender: new events were committed to the spool."""
        self._new_data.set()

    async def run(self, stop: asyncio.Event) -> None:
        channel = create_channel(self._settings)
        stop_task = asyncio.create_task(stop.wait(), name="sender-stop")
        failures = 0
        try:
            while not stop.is_set():
                state: list[_StreamState] = []
                self.stream_attempts += 1
                stream = asyncio.create_task(self._stream(channel, state), name="sender-stream")
                await asyncio.wait({stream, stop_task}, return_when=asyncio.FIRST_COMPLETED)
                if not stream.done():
                    stream.cancel()
                    await asyncio.gather(stream, return_exceptions=True)
                    return
                error = self.last_error = stream.exception()
                if state and state[0].progressed:
                    failures = 0
                delay = self._delay_after(error, failures)
                failures += 1
                await asyncio.wait({stop_task}, timeout=delay)
        finally:
            stop_task.cancel()
            await channel.close(grace=None)

    def _delay_after(self, error: BaseException | None, failures: int) -> float:
        settings = self._settings
        if isinstance(error, StreamRejectedError):
            delay = backoff_delay(0, settings.rejected_backoff_s, settings.rejected_backoff_s)
            logger.error("cloud %s rejected the agent: %s; retrying in %.0fs", settings.server, error, delay)
            return delay
        delay = backoff_delay(failures, settings.backoff_initial_s, settings.backoff_max_s)
        if isinstance(error, StreamError):
            logger.warning("stream to %s failed: %s; reconnecting in %.1fs", settings.server, error, delay)
        else:
            logger.error("sender failed; reconnecting in %.1fs", delay, exc_info=error)
        return delay

    async def _stream(self, channel: grpc.aio.Channel, state_out: list[_StreamState]) -> None:
        """One stream, from Hello until it fails; always raises."""
        settings = self._settings
        stub = ingest_pb2_grpc.IngestStub(channel)
        metadata = (("authorization", f"Bearer {settings.token.get_secret_value()}"),)
        call = stub.Stream(None, metadata=metadata)
        try:
            try:
                async with asyncio.timeout(settings.connect_timeout_s):
                    await channel.channel_ready()
                    await call.write(pb.AgentMessage(hello=self._hello()))
                    first = await call.read()
            except TimeoutError as exc:
                raise StreamError(f"no Welcome within {settings.connect_timeout_s}s") from exc
            if not isinstance(first, pb.CloudMessage) or first.WhichOneof("body") != "welcome":
                got = first.WhichOneof("body") if isinstance(first, pb.CloudMessage) else "end of stream"
                raise StreamError(f"expected Welcome, got {got}")
            welcome = first.welcome
            await self._spool.reconcile(welcome.acked_seq)
            state = _StreamState(
                sent_seq=welcome.acked_seq,
                max_events=min(settings.batch_max_events, welcome.max_batch_events or 1 << 32),
                max_bytes=min(
                    settings.batch_max_bytes,
                    max(1024, (welcome.max_message_bytes or MAX_BATCH_BYTES * 2) - _ENVELOPE_BYTES),
                ),
            )
            state_out.append(state)
            self.link.oldest_unacked = lambda: state.inflight[0].sent_at if state.inflight else None
            self.streams_opened += 1
            if self._on_connected is not None:
                self._on_connected()
            logger.info("streaming to %s; cloud has seq <= %d", settings.server, welcome.acked_seq)
            await _first_failure(
                self._write_batches(call, state), self._read_acks(call, state), self._watch_acks(state)
            )
        except grpc.aio.AioRpcError as exc:
            raise translate_rpc_error(exc) from exc
        except asyncio.InvalidStateError as exc:  # a write after the cloud ended the call
            code = await call.code()
            raise stream_error(code, f"{code.name}: {await call.details()}") from exc
        finally:
            call.cancel()

    def _hello(self) -> pb.Hello:
        settings = self._settings
        return pb.Hello(
            session_id=settings.session_id,
            user_id=settings.user_id,
            agent_version=settings.agent_version,
            capabilities=[*sorted(settings.sensors), *self._capabilities],
            hostname=socket.gethostname()[:255],
            image=settings.image,
        )

    async def _write_batches(self, call: _Call, state: _StreamState) -> None:
        max_inflight = self._settings.max_inflight_batches
        while True:
            while len(state.inflight) >= max_inflight:
                state.acked.clear()
                await state.acked.wait()
            self._new_data.clear()  # before reading, so a commit during the read is not missed
            events = await self._spool.read_after(state.sent_seq, state.max_events, state.max_bytes)
            if not events:
                await self._new_data.wait()
                continue
            batch = pb.EventBatch(events=events)
            with self._tracer.start_as_current_span("agent.send_batch") as span:
                span.set_attribute("shadowdesk.first_seq", events[0].seq)
                span.set_attribute("shadowdesk.last_seq", events[-1].seq)
                span.set_attribute("shadowdesk.events", len(events))
                propagate.inject(batch.trace_context)
                message = pb.AgentMessage(batch=batch)
                await call.write(message)
            state.inflight.append(_InFlight(events[-1].seq, time.monotonic()))
            state.sent_seq = events[-1].seq
            state.sent.set()
            self._bytes_sent.add(message.ByteSize())
            self._events_sent.add(len(events))

    async def _read_acks(self, call: _Call, state: _StreamState) -> None:
        while True:
            message = await call.read()
            if not isinstance(message, pb.CloudMessage):  # grpc.aio.EOF
                raise StreamError("the cloud ended the stream")
            body = message.WhichOneof("body")
            if body == "ack":
                acked_seq = message.ack.acked_seq
                now = time.monotonic()
                while state.inflight and state.inflight[0].last_seq <= acked_seq:
                    rtt_s = now - state.inflight.popleft().sent_at
                    self._ack_latency.record(rtt_s)
                    self.link.acked(rtt_s)
                await self._spool.mark_acked(acked_seq)
                state.progressed = True
                state.acked.set()
            elif body == "command":
                await self._take_command(message.command)
            else:
                logger.warning("unexpected %s message on an open stream; ignored", body)

    async def _take_command(self, command: pb.Command) -> None:
        # Never the whole message in a log: it may carry the user's secret.
        if self._on_command is None:
            logger.info("command %s received; this agent runs no executor", command.command_id)
            return
        await self._on_command(command)

    async def _watch_acks(self, state: _StreamState) -> None:
        timeout_s = self._settings.ack_timeout_s
        while True:
            if not state.inflight:
                state.sent.clear()
                await state.sent.wait()
                continue
            remaining = state.inflight[0].sent_at + timeout_s - time.monotonic()
            if remaining <= 0:
                raise AckTimeoutError(f"no Ack for seq {state.inflight[0].last_seq} within {timeout_s}s")
            await asyncio.sleep(remaining)

    def _observe_depth(self, options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        return [metrics.Observation(self._spool.depth)]


_Call = grpc.aio.StreamStreamCall[pb.AgentMessage, pb.CloudMessage]


async def _first_failure(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run the coroutines until one of them raises; cancel the others and re-raise."""
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if (error := task.exception()) is not None:
            raise error
    raise StreamError("stream tasks ended without an error")
