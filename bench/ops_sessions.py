"""Simulated desktops for the ops benchmark: plausible metric traces, injected faults, and real streams.

A trace is synthetic, not recorded: an idle desktop (CPU 2-10 % with noise) with bursts of work whose
length is log-normal (median 4 s, one in twenty longer than 20 s, capped at 60 s; an app starting, a
page loading, a build), every two minutes on average; memory that wanders slowly around its level and
rises during bursts; a disk that fills very slowly. Faults replace one metric with a step that holds for
the fault's duration (step onsets make "onset" a measured instant):

* ``cpu_hog``: CPU 97-100 %, expected rules ``cpu_saturated`` or ``cpu_unusual``;
* ``memory_leak``: memory 96.5-99 %, expected ``memory_pressure`` or ``memory_unusual``;
* ``disk_fill``: disk 96-99.5 % used, expected ``disk_full``.

Each session is one real gRPC stream (Hello, Welcome, batches, acks) with its own user and ingest token.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from dataclasses import dataclass, field

import grpc
import grpc.aio

from protos.shadowdesk.v1 import ingest_pb2 as pb
from protos.shadowdesk.v1 import ingest_pb2_grpc

NS_PER_S = 1_000_000_000
MEMORY_TOTAL = 8 * 1024**3
EXPECTED = {
    "cpu_hog": {"cpu_saturated", "cpu_unusual"},
    "memory_leak": {"memory_pressure", "memory_unusual"},
    "disk_fill": {"disk_full"},
}
_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    onset: float  # seconds since the Unix epoch (the session's clock)
    duration_s: float

    def active(self, t: float) -> bool:
        return self.onset <= t < self.onset + self.duration_s


@dataclass(slots=True)
class Trace:
    """One desktop's metrics, second by second; ``faults`` override them while active."""

    rng: random.Random
    faults: list[Fault] = field(default_factory=list)
    cpu_base: float = 0.0
    memory: float = 0.0
    disk: float = 0.0
    _burst_left: float = 0.0
    _burst_level: float = 0.0

    def __post_init__(self) -> None:
        self.cpu_base = self.rng.uniform(2, 10)
        self.memory = self.rng.uniform(35, 65)
        self.disk = self.rng.uniform(30, 80)

    def sample(self, t: float) -> tuple[float, float, float]:
        """(cpu %, memory %, disk %) at ``t``; call once per second, in order."""
        rng = self.rng
        if self._burst_left <= 0 and rng.random() < 1 / 120:
            self._burst_left = min(60.0, rng.lognormvariate(math.log(4), 1.0))
            self._burst_level = rng.uniform(40, 100)
        cpu = self.cpu_base + rng.gauss(0, 2)
        memory_bump = 0.0
        if self._burst_left > 0:
            cpu = self._burst_level + rng.gauss(0, 5)
            memory_bump = 3.0
            self._burst_left -= 1
        self.memory = min(80.0, max(20.0, self.memory + rng.gauss(0, 0.05)))
        self.disk = min(90.0, self.disk + 0.0001)
        values = [cpu, self.memory + memory_bump + rng.gauss(0, 0.2), self.disk]
        for fault in self.faults:
            if fault.active(t):
                if fault.kind == "cpu_hog":
                    values[0] = rng.uniform(97, 100)
                elif fault.kind == "memory_leak":
                    values[1] = rng.uniform(96.5, 99)
                else:
                    values[2] = rng.uniform(96, 99.5)
        cpu, memory, disk = (min(100.0, max(0.0, v)) for v in values)
        return cpu, memory, disk


def metrics_event(seq: int, t: float, cpu: float, memory: float, disk: float) -> pb.Event:
    return pb.Event(
        seq=seq,
        time_unix_nano=int(t * NS_PER_S),
        metrics=pb.SystemMetrics(
            cpu_percent=cpu,
            memory_used_bytes=int(MEMORY_TOTAL * memory / 100),
            memory_total_bytes=MEMORY_TOTAL,
            load_1m=cpu / 50,
            disk_used_percent=disk,
            process_count=180,
        ),
    )


class SimSession:
    """One session's stream: ``send`` writes a batch and waits for its ack."""

    def __init__(self, channel: grpc.aio.Channel, user: str, session: str, token: str) -> None:
        self.user, self.session = user, session
        self._stub = ingest_pb2_grpc.IngestStub(channel)
        self._token = token
        self._call: grpc.aio.StreamStreamCall[pb.AgentMessage, pb.CloudMessage] | None = None
        self.seq = 0

    async def connect(self, stream_deadline_s: float) -> None:
        self._call = self._stub.Stream(
            None, metadata=(("authorization", f"Bearer {self._token}"),), timeout=stream_deadline_s
        )
        hello = pb.Hello(session_id=self.session, user_id=self.user, agent_version="bench", hostname="bench")
        async with asyncio.timeout(_TIMEOUT_S):
            await self._call.write(pb.AgentMessage(hello=hello))
            reply = await self._call.read()
        if not isinstance(reply, pb.CloudMessage) or reply.WhichOneof("body") != "welcome":
            raise RuntimeError(f"expected Welcome, got {reply!r}")
        self.seq = reply.welcome.acked_seq

    async def send(self, samples: list[tuple[float, float, float, float]]) -> None:
        """Send (t, cpu, memory, disk) samples as one batch and wait for its ack."""
        assert self._call is not None
        events = []
        for t, cpu, memory, disk in samples:
            self.seq += 1
            events.append(metrics_event(self.seq, t, cpu, memory, disk))
        async with asyncio.timeout(_TIMEOUT_S):
            await self._call.write(pb.AgentMessage(batch=pb.EventBatch(events=events)))
            while True:
                reply = await self._call.read()
                if not isinstance(reply, pb.CloudMessage):
                    raise RuntimeError(f"the stream of {self.session} ended")
                if reply.WhichOneof("body") == "ack" and reply.ack.acked_seq >= self.seq:
                    return

    async def close(self) -> None:
        if self._call is not None:
            with contextlib.suppress(grpc.aio.AioRpcError, TimeoutError, asyncio.InvalidStateError):
                async with asyncio.timeout(5):
                    await self._call.done_writing()
            self._call.cancel()
