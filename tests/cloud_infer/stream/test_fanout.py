"""The committed stream's fan-out behind the real gRPC ingest server, on each real store backend.

Consumers here are small recorders: each notes every (user, session, seq) it is handed, so a test can
tell an event delivered twice, skipped or out of order. A stalled consumer blocks on a gate the test
opens; a failing one raises until the test lets it pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from cloud_infer.app import build_app
from cloud_infer.config import ServerSettings
from cloud_infer.server import create_grpc_server, ingest_service
from cloud_infer.services import Services
from cloud_infer.stream import Fanout, StoreCursors, StreamSettings
from cloud_infer.stream.metrics import StreamMetrics
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.directory import UserDirectory
from recall_store.event_log import EventLog
from tests.support.cloud import (
    AgentStream,
    FaultyStore,
    ingest_token,
    metrics,
    now_ns,
    serve_api,
    wait_for,
)

BATCH = 5


class Recorder:
    """A consumer that notes what it is handed; ``gate`` (when given) must be open before it notes."""

    def __init__(self, gate: asyncio.Event | None = None, failing: bool = False) -> None:
        self.seen: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.gate = gate
        self.entered = asyncio.Event()
        self.failing = failing
        self.failures = 0

    async def __call__(self, user_id: str, session_id: str, events: Sequence[pb.Event]) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            self.failures += 1
            raise RuntimeError("injected consumer failure")
        self.seen[(user_id, session_id)].extend(e.seq for e in events)

    def counts(self) -> Counter[tuple[str, str, int]]:
        return Counter((u, s, seq) for (u, s), seqs in self.seen.items() for seq in seqs)

    def reached(self, user_id: str, session_id: str, seq: int) -> bool:
        seqs = self.seen.get((user_id, session_id)) or [0]
        return seqs[-1] >= seq


class UsersOf:
    """The real user directory, showing only this test's users: the session's MinIO holds every test's."""

    def __init__(self, store: FaultyStore, prefix: str) -> None:
        self._directory = UserDirectory(store)
        self._prefix = prefix

    async def users(self) -> list[str]:
        return [user for user in await self._directory.users() if user.startswith(self._prefix)]


def stream_over(store: FaultyStore, users: str, **overrides: float) -> Fanout:
    """A fan-out sweeping the users whose ids start with ``users``."""
    settings = StreamSettings(retry_initial_s=0.05, retry_max_s=0.2).model_copy(update=overrides)
    return Fanout(settings, EventLog(store), UsersOf(store, users))


@contextlib.asynccontextmanager
async def ingest_into(settings: ServerSettings, store: FaultyStore, stream: Fanout) -> AsyncIterator[str]:
    """A real gRPC ingest server publishing to ``stream``; yields its address."""
    server, port = await create_grpc_server(settings, ingest_service(settings, store, stream=stream))
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


def events(first_seq: int, t0: int) -> list[pb.Event]:
    return [metrics(first_seq + i, t0 + i) for i in range(BATCH)]


async def send(target: str, user: str, session: str, batches: int) -> list[float]:
    """``batches`` batches of BATCH events after what the server holds; returns each ack's seconds."""
    agent = AgentStream(target, ingest_token(user, session))
    latencies = []
    try:
        welcome = await agent.open(user, session)
        seq, t0 = welcome.acked_seq + 1, now_ns()
        for _ in range(batches):
            started = time.perf_counter()
            assert await agent.ack(events(seq, t0 + seq)) == seq + BATCH - 1
            latencies.append(time.perf_counter() - started)
            seq += BATCH
    finally:
        await agent.close()
    return latencies


def everything(sessions: list[tuple[str, str]], last_seq: int) -> Counter[tuple[str, str, int]]:
    return Counter((u, s, seq) for u, s in sessions for seq in range(1, last_seq + 1))


async def test_a_stalled_consumer_does_not_change_ack_latency_or_other_consumers(
    settings: ServerSettings, store: FaultyStore, user: str, session: str
) -> None:
    gate = asyncio.Event()
    stalled, steady = Recorder(gate), Recorder()
    stream = stream_over(store, user, queue_batches=4)
    stream.register("stalled", stalled)
    stream.register("steady", steady)
    stream.start()
    try:
        async with ingest_into(settings, store, stream) as target:
            gate.set()  # first no stall: both consumers keep up
            free = await send(target, user, session, 20)
            await asyncio.wait_for(stream.idle(), 30)
            gate.clear()  # now "stalled" blocks inside its next call until the gate opens again
            stalled.entered.clear()
            blocked = await send(target, user, session, 20)
            assert stalled.entered.is_set(), "the stalled consumer was in its call during every ack"
            await wait_for(lambda: steady.reached(user, session, 40 * BATCH), 30)
            lag = {c.consumer: c for c in stream.health().consumers}
            assert lag["stalled"].events_behind >= 19 * BATCH and lag["stalled"].reading_log == 1
            assert lag["stalled"].queued_events <= 4 * BATCH, "memory stays within queue_batches"
            assert lag["steady"].events_behind == 0

            # Acks never waited for the stalled consumer: no ack slower than a second, and typical
            # acks no slower than without the stall (the old in-lock hook would never have acked).
            assert max(blocked) < 1.0, blocked
            assert statistics.median(blocked) <= 2 * statistics.median(free) + 0.05, (free, blocked)

            gate.set()  # released: it catches up from the event log
            await asyncio.wait_for(stream.idle(), 30)
    finally:
        await stream.close()
    every = everything([(user, session)], 40 * BATCH)
    assert stalled.counts() == every and steady.counts() == every, "each event once, none skipped"
    assert stalled.seen[(user, session)] == sorted(stalled.seen[(user, session)]), "in seq order"


async def test_after_a_restart_every_consumer_reaches_the_end_once(
    settings: ServerSettings, store: FaultyStore
) -> None:
    run = uuid.uuid4().hex[:8]
    sessions = [(f"user-{run}-{i}", f"desk-{run}-{i}") for i in range(3)]
    gate = asyncio.Event()  # shut: the "slow" consumer is stuck mid-call when the server stops
    fast, slow = Recorder(), Recorder(gate)
    first = stream_over(store, f"user-{run}-", close_grace_s=0.2)
    first.register("fast", fast)
    first.register("slow", slow)
    first.start()
    async with ingest_into(settings, store, first) as target:
        for user, session in sessions:
            await send(target, user, session, 6)
        await wait_for(lambda: all(fast.reached(u, s, 6 * BATCH) for u, s in sessions), 30)
        await wait_for(lambda: slow.entered.is_set(), 30)
    await first.close()  # graceful: "fast" saves its cursors, "slow"'s stuck call is cancelled
    assert not slow.seen

    gate.set()
    second = stream_over(store, f"user-{run}-")  # a new process: the same consumers over the same store
    second.register("fast", fast)
    second.register("slow", slow)
    second.start()
    try:
        async with ingest_into(settings, store, second) as target:
            user, session = sessions[0]  # one agent comes back; the others never do
            await send(target, user, session, 2)
            assert await second.sweep() >= 0  # what the start's sweep does, awaited here
            await asyncio.wait_for(second.idle(), 30)
    finally:
        await second.close()

    expected = everything(sessions[:1], 8 * BATCH) + everything(sessions[1:], 6 * BATCH)
    assert fast.counts() == expected, "fast: nothing twice across the restart, nothing skipped"
    assert slow.counts() == expected, "slow: caught up from its cursor, the cancelled call once"
    log = EventLog(store)
    for name in ("fast", "slow"):
        cursors = StoreCursors(store, name)
        for user, session in sessions:
            assert await cursors.load(user, session) == await log.last_seq(user, session), (name, session)


async def test_a_failing_consumer_is_retried_and_does_not_stop_others(
    settings: ServerSettings, store: FaultyStore, user: str, session: str
) -> None:
    flaky, steady = Recorder(failing=True), Recorder()
    stream = stream_over(store, user)
    stream.register("flaky", flaky)
    stream.register("steady", steady)
    stream.start()
    try:
        async with ingest_into(settings, store, stream) as target:
            await send(target, user, session, 10)
            await wait_for(lambda: steady.reached(user, session, 10 * BATCH), 30)
            await wait_for(lambda: flaky.failures >= 3, 30)  # retried, with backoff
            lag = {c.consumer: c for c in stream.health().consumers}
            assert lag["flaky"].failing_sessions == 1 and lag["flaky"].events_behind == 10 * BATCH
            assert lag["steady"].failing_sessions == 0 and lag["steady"].events_behind == 0
            flaky.failing = False
            await asyncio.wait_for(stream.idle(), 30)
            assert stream.health().consumers[0].failing_sessions == 0
    finally:
        await stream.close()
    every = everything([(user, session)], 10 * BATCH)
    assert flaky.counts() == every and steady.counts() == every


async def test_lag_is_a_metric_and_a_public_health_endpoint_without_ids(
    settings: ServerSettings, store: FaultyStore, user: str, session: str
) -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    gate = asyncio.Event()
    stream = Fanout(
        StreamSettings(metrics_interval_s=0.05),
        EventLog(store),
        UsersOf(store, user),
        metrics=StreamMetrics(meter),
    )
    stream.register("stalled", Recorder(gate))
    stream.start()
    app = build_app(settings, Services.create(settings, store, stream=stream))
    try:
        async with ingest_into(settings, store, stream) as target:
            await send(target, user, session, 3)

            def lag_points() -> dict[str, float]:
                data = reader.get_metrics_data()
                points = {}
                for resource in data.resource_metrics if data else ():
                    for scope in resource.scope_metrics:
                        for metric in scope.metrics:
                            for point in metric.data.data_points:
                                if (point.attributes or {}).get("shadowdesk.consumer") == "stalled":
                                    points[metric.name] = getattr(point, "value", -1.0)
                return points

            await wait_for(lambda: lag_points().get("shadowdesk.stream.lag.events") == 3 * BATCH, 10)
            assert lag_points()["shadowdesk.stream.lag.seconds"] > 0
            async with serve_api(app) as client:
                reply = await client.get("/health/stream")  # no token: public, like /health
                assert reply.status_code == 200
                assert user not in reply.text and session not in reply.text
                body = reply.json()
                (stalled,) = body["consumers"]
                assert stalled["consumer"] == "stalled" and stalled["events_behind"] == 3 * BATCH
                assert stalled["sessions_behind"] == 1 and stalled["seconds_behind"] > 0
                assert body["last_sweep_s"] is not None
                gate.set()
                await asyncio.wait_for(stream.idle(), 30)
                caught_up = (await client.get("/health/stream")).json()["consumers"][0]
                assert caught_up["events_behind"] == 0 and caught_up["delivered_events"] == 3 * BATCH
    finally:
        await stream.close()
