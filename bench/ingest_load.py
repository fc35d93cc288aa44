"""Simulated agents for the ingest benchmark: one client process runs many gRPC streams on asyncio.

Each agent is one stream with its own user, session and token. It says Hello, waits for Welcome,
sends one warm-up batch (which creates the user's bucket, so bucket creation stays out of the
measurement), reports ready, and at the common start time sends batches of small events until the
common end time, with at most ``window`` batches unacknowledged. Closed-loop agents send as soon as
the window allows (saturation); paced agents send one batch every ``interval_s``.

Events are WindowFocus, SystemMetrics and InputActivity in turn; no screen frames. The batch message
is built once per agent and only its seqs and timestamps change, so the clients spend their CPU on
gRPC rather than on building protobufs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import TypeAlias

import grpc
import grpc.aio

from protos.shadowdesk.v1 import ingest_pb2 as pb
from protos.shadowdesk.v1 import ingest_pb2_grpc

logger = logging.getLogger(__name__)

# (agents connected, most common connect errors), and the (start, end) monotonic times of the run.
ReadyQueue: TypeAlias = "Queue[tuple[int, list[str]]]"
GoQueue: TypeAlias = "Queue[tuple[float, float]]"
_AioStreamCallable: TypeAlias = "grpc.aio.StreamStreamMultiCallable[pb.AgentMessage, pb.CloudMessage]"
_AioStub: TypeAlias = "ingest_pb2_grpc.IngestStub[_AioStreamCallable]"

_CONNECTS_AT_ONCE = 50
_CLOSE_S = 10.0
_GO_WAIT_S = 900.0


@dataclass(frozen=True, slots=True)
class AgentSpec:
    user_id: str
    session_id: str
    token: str


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What one client process does; ``interval_s`` None means closed loop."""

    target: str
    agents: list[AgentSpec]
    batch_events: int
    window: int
    interval_s: float | None
    agents_per_channel: int
    connect_timeout_s: float
    ack_timeout_s: float
    stream_deadline_s: float
    metrics_only: bool = False  # every event a SystemMetrics sample (the ops benchmark)


@dataclass(slots=True)
class LoadResult:
    """What one client process measured inside the common [start, end] window."""

    connected: int = 0
    events_acked: int = 0
    batches_acked: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    stalls: int = 0
    errors: list[str] = field(default_factory=list)


def _template_batch(batch_events: int, metrics_only: bool) -> pb.AgentMessage:
    message = pb.AgentMessage()
    for i in range(batch_events):
        event = message.batch.events.add()
        kind = 1 if metrics_only else i % 3
        if kind == 0:
            focus = event.window_focus
            focus.window_id = 0x1A00007 + i % 5
            focus.app_id = "chromium"
            focus.wm_class = "chromium.Chromium"
            focus.title = "Quarterly report - Google Sheets - Chromium"
            focus.pid = 4242
        elif kind == 1:
            metrics = event.metrics
            metrics.cpu_percent = 23.5
            metrics.memory_used_bytes = 3_221_225_472
            metrics.memory_total_bytes = 8_589_934_592
            metrics.load_1m = 0.75
            metrics.disk_used_percent = 41.0
            metrics.net_rx_bytes = 123_456_789
            metrics.net_tx_bytes = 12_345_678
            metrics.process_count = 187
        else:
            activity = event.input
            activity.interval_ms = 1000
            activity.key_presses = 7
            activity.pointer_clicks = 1
            activity.pointer_moves = 35
            activity.idle_ms = 120
    return message


@dataclass(slots=True)
class _Pending:
    last_seq: int
    events: int
    sent_at: float


class _Agent:
    def __init__(self, spec: AgentSpec, stub: _AioStub, load: LoadSpec) -> None:
        self.spec = spec
        self._stub = stub
        self._load = load
        self._message = _template_batch(load.batch_events, load.metrics_only)
        self._next_seq = 1
        self._pending: deque[_Pending] = deque()
        self._acked = asyncio.Condition()
        self._call: grpc.aio.StreamStreamCall[pb.AgentMessage, pb.CloudMessage] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stream_ended = False
        self._stream_error = "end of stream"
        self._start = math.inf
        self._end = math.inf
        self._result = LoadResult()

    async def connect(self, call_timeout_s: float) -> None:
        load = self._load
        self._call = self._stub.Stream(
            None,  # requests are written with write(), so the window can be bounded
            metadata=(("authorization", f"Bearer {self.spec.token}"),),
            timeout=call_timeout_s,
        )
        hello = pb.Hello(
            session_id=self.spec.session_id,
            user_id=self.spec.user_id,
            agent_version="bench",
            capabilities=["window_focus", "system_metrics"],
            hostname="bench-host",
        )
        await asyncio.wait_for(self._call.write(pb.AgentMessage(hello=hello)), load.connect_timeout_s)
        reply = await asyncio.wait_for(self._call.read(), load.connect_timeout_s)
        if not isinstance(reply, pb.CloudMessage) or reply.WhichOneof("body") != "welcome":
            raise RuntimeError(f"expected Welcome, got {reply!r}")
        self._next_seq = reply.welcome.acked_seq + 1
        self._reader = asyncio.create_task(self._read_acks(), name=f"acks-{self.spec.session_id}")
        await self._send()
        await self._wait_pending_at_most(0, load.ack_timeout_s)

    async def run(self, start: float, end: float, result: LoadResult) -> None:
        """Send until ``end``, then wait for the acks still owed; measure into ``result``."""
        self._start, self._end, self._result = start, end, result
        load = self._load
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        next_send = time.monotonic()
        if load.interval_s is not None:
            next_send += random.uniform(0, load.interval_s)  # spread paced agents over the interval
        while True:
            if load.interval_s is not None:
                await asyncio.sleep(max(0.0, next_send - time.monotonic()))
            if time.monotonic() >= end:
                break
            if len(self._pending) >= load.window:
                if load.interval_s is not None:
                    result.stalls += 1
                await self._wait_pending_at_most(load.window - 1, load.ack_timeout_s)
                if time.monotonic() >= end:
                    break
            await self._send()
            if load.interval_s is not None:
                # Fall behind by at most one interval instead of bursting to catch up.
                next_send = max(next_send + load.interval_s, time.monotonic() - load.interval_s)
        await self._wait_pending_at_most(0, load.ack_timeout_s)  # drain what is still owed

    async def close(self) -> None:
        """Half-close and wait for the server to end the stream; cancel it if that takes too long."""
        if self._call is not None:
            try:
                await asyncio.wait_for(self._call.done_writing(), _CLOSE_S)
                await asyncio.wait_for(self._call.code(), _CLOSE_S)
            except (TimeoutError, grpc.aio.AioRpcError, asyncio.InvalidStateError):
                self._call.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _send(self) -> None:
        assert self._call is not None
        now_ns = time.time_ns()
        seq = self._next_seq
        for event in self._message.batch.events:
            event.seq = seq
            event.time_unix_nano = now_ns
            seq += 1
        events = len(self._message.batch.events)
        self._pending.append(_Pending(seq - 1, events, time.monotonic()))
        self._next_seq = seq
        # grpc serializes the message before write() first yields, so mutating it afterwards is safe.
        await self._call.write(self._message)

    async def _read_acks(self) -> None:
        try:
            await self._consume_acks()
        except grpc.aio.AioRpcError as exc:
            self._stream_error = f"{exc.code().name}: {exc.details()}"
        finally:
            self._stream_ended = True
            async with self._acked:
                self._acked.notify_all()

    async def _consume_acks(self) -> None:
        assert self._call is not None
        while True:
            reply = await self._call.read()
            if not isinstance(reply, pb.CloudMessage):
                return  # end of stream
            if reply.WhichOneof("body") != "ack":
                continue
            now = time.monotonic()
            acked_seq = reply.ack.acked_seq
            result = self._result
            while self._pending and self._pending[0].last_seq <= acked_seq:
                batch = self._pending.popleft()
                if self._start <= batch.sent_at <= self._end:
                    result.latencies_ms.append((now - batch.sent_at) * 1000)
                if self._start <= now <= self._end:
                    result.events_acked += batch.events
                    result.batches_acked += 1
            async with self._acked:
                self._acked.notify_all()

    async def _wait_pending_at_most(self, most_pending: int, timeout_s: float) -> None:
        async with self._acked:
            await asyncio.wait_for(
                self._acked.wait_for(lambda: len(self._pending) <= most_pending or self._stream_ended),
                timeout_s,
            )
        if len(self._pending) > most_pending:
            raise RuntimeError(f"{self._stream_error} with {len(self._pending)} batches unacknowledged")


def run_load_process(spec: LoadSpec, ready: ReadyQueue, go: GoQueue, results: Queue[LoadResult]) -> None:
    """Entry point of a client process: connect, report ready, run on the (start, end) sent through ``go``."""
    asyncio.run(_run(spec, ready, go, results))


async def _run(spec: LoadSpec, ready: ReadyQueue, go: GoQueue, results: Queue[LoadResult]) -> None:
    result = LoadResult()
    errors: Counter[str] = Counter()
    n_channels = -(-len(spec.agents) // spec.agents_per_channel)
    # A local subchannel pool per channel gives each channel its own TCP connection.
    channels = [
        grpc.aio.insecure_channel(spec.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(n_channels)
    ]
    stubs: list[_AioStub] = [ingest_pb2_grpc.IngestStub(channel) for channel in channels]
    agents = [_Agent(a, stubs[i // spec.agents_per_channel], spec) for i, a in enumerate(spec.agents)]
    limit = asyncio.Semaphore(_CONNECTS_AT_ONCE)

    async def connect(agent: _Agent) -> _Agent:
        async with limit:
            await agent.connect(spec.stream_deadline_s)
            return agent

    try:
        outcomes = await asyncio.gather(*(connect(a) for a in agents), return_exceptions=True)
        connected = [o for o in outcomes if isinstance(o, _Agent)]
        errors.update(_describe(o) for o in outcomes if isinstance(o, BaseException))
        result.connected = len(connected)
        ready.put((len(connected), [f"{n} x {e}" for e, n in errors.most_common(3)]))
        start, end = await asyncio.to_thread(go.get, True, _GO_WAIT_S)
        runs = await asyncio.gather(*(a.run(start, end, result) for a in connected), return_exceptions=True)
        errors.update(_describe(o) for o in runs if isinstance(o, BaseException))
    finally:
        await asyncio.gather(*(a.close() for a in agents), return_exceptions=True)
        await asyncio.gather(*(c.close(None) for c in channels), return_exceptions=True)
    result.errors = [f"{n} x {e}" for e, n in errors.most_common(5)]
    # Reported from inside the loop: the result must not depend on grpc's teardown at interpreter exit.
    results.put(result)


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"[:300]
    return f"{type(error).__name__}: {error}"[:300]
