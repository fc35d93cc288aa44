"""The sender against the real cloud_infer ingest server, and against a fault-injecting test server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cloud_infer.config import ServerSettings
from cloud_infer.server import create_grpc_server, ingest_service
from protos.shadowdesk.v1 import ingest_pb2 as pb
from protos.shadowdesk.v1 import ingest_pb2_grpc
from session_agent.config import AgentSettings
from session_agent.errors import RETRYABLE_CODES, AckTimeoutError, StreamRejectedError
from session_agent.sender import Sender, backoff_delay
from session_agent.spool import AsyncSpool
from tests.support.agent_cloud import SECRET, CloudServer
from tests.support.polling import async_wait_until

MIB = 1024 * 1024


def focus(n: int) -> pb.Event:
    return pb.Event(time_unix_nano=time.time_ns(), window_focus=pb.WindowFocus(app_id="xterm", title=f"e{n}"))


class Running:
    """A Sender running in a task over its own spool."""

    def __init__(
        self, sender: Sender, spool: AsyncSpool, task: asyncio.Task[None], stop: asyncio.Event
    ) -> None:
        self.sender, self.spool, self.task, self.stop = sender, spool, task, stop

    async def produce(self, count: int, chunk: int = 25, start: int = 1) -> None:
        for first in range(start, start + count, chunk):
            await self.spool.append([focus(n) for n in range(first, min(first + chunk, start + count))])
            self.sender.notify()
            await asyncio.sleep(0)

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)
        await self.spool.close()


@pytest.fixture
async def start_sender() -> AsyncIterator[Callable[..., Any]]:
    running: list[Running] = []

    async def start(settings: AgentSettings, **kwargs: Any) -> Running:
        spool = await AsyncSpool.open(settings.spool_path, settings.session_id, settings.spool_max_bytes)
        sender = Sender(settings, spool, **kwargs)
        stop = asyncio.Event()
        running.append(Running(sender, spool, asyncio.create_task(sender.run(stop)), stop))
        return running[-1]

    yield start
    for item in running:
        if not item.task.done():
            await item.close()


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap() -> None:
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (10, 30.0), (1000, 30.0)]:
        delays = [backoff_delay(attempt, 0.5, 30.0) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1, "jittered"
    assert grpc.StatusCode.UNAVAILABLE in RETRYABLE_CODES
    assert not RETRYABLE_CODES & {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
    }


async def test_spool_reaches_the_real_cloud_in_order_and_is_emptied(
    cloud: CloudServer, make_settings: Callable[..., AgentSettings], start_sender: Callable[..., Any]
) -> None:
    settings = make_settings(server=cloud.target, batch_max_events=40)
    started = time.time_ns()
    running: Running = await start_sender(settings)
    await running.produce(300)
    await async_wait_until(lambda: running.spool.spool.acked_seq == 300, what="all 300 acked")
    assert running.spool.depth == 0
    logged = await cloud.event_log.read(settings.user_id, started, time.time_ns() + 1)
    assert [e.event.seq for e in logged] == list(range(1, 301))
    assert [e.event.window_focus.title for e in logged] == [f"e{n}" for n in range(1, 301)]
    assert {e.session_id for e in logged} == {settings.session_id}
    assert running.sender.streams_opened == 1


async def test_resumes_after_the_real_cloud_restarts_mid_stream(
    tmp_path: Path, make_settings: Callable[..., AgentSettings], start_sender: Callable[..., Any]
) -> None:
    from recall_store.event_log import EventLog
    from recall_store.local import LocalObjectStore

    store = LocalObjectStore(tmp_path / "store", workers=4)
    event_log = EventLog(store)
    server_settings = ServerSettings(environment="local", token_secret=SECRET, grpc_port=0)

    async def start_cloud(settings: ServerSettings) -> tuple[grpc.aio.Server, int]:
        return await create_grpc_server(settings, ingest_service(settings, event_log.store))

    server, port = await start_cloud(server_settings)
    settings = make_settings(server=f"127.0.0.1:{port}", batch_max_events=10)
    started = time.time_ns()
    running: Running = await start_sender(settings)
    await running.produce(100)
    await async_wait_until(lambda: running.spool.spool.acked_seq >= 30, what="first events acked")
    await server.stop(None)
    await running.produce(100, start=101)  # sensed while the cloud is down: they wait in the spool
    server, _ = await start_cloud(server_settings.model_copy(update={"grpc_port": port}))
    try:
        await async_wait_until(
            lambda: running.spool.spool.acked_seq == 200, what="all 200 acked after restart"
        )
        logged = await event_log.read(settings.user_id, started, time.time_ns() + 1)
        assert [e.event.seq for e in logged] == list(range(1, 201))
        assert running.sender.streams_opened >= 2
    finally:
        await running.close()
        await server.stop(None)
        await store.close()


async def test_a_bad_token_is_logged_and_not_retried_soon(
    cloud: CloudServer,
    make_settings: Callable[..., AgentSettings],
    start_sender: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(server=cloud.target, token="not-a-token", rejected_backoff_s=60)
    with caplog.at_level(logging.ERROR, logger="session_agent.sender"):
        running: Running = await start_sender(settings)
        await running.produce(5)
        await async_wait_until(lambda: running.sender.last_error is not None, what="the rejection")
        error = running.sender.last_error
        assert isinstance(error, StreamRejectedError)
        assert error.code == grpc.StatusCode.UNAUTHENTICATED
        assert "rejected the agent: UNAUTHENTICATED" in caplog.text
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # no reconnect storm in the meantime
            assert running.sender.stream_attempts == 1
            await asyncio.sleep(0.05)
        assert running.spool.depth == 5, "nothing is lost while rejected"


class FaultyIngest(ingest_pb2_grpc.IngestServicer):
    """An Ingest server for fault injection: stores by seq and dedups like the real one. It can drop
    every ``drop_every``-th batch of a stream, alternately before storing it (batch lost) and after
    (ack lost), or never ack on its first ``silent_streams`` streams."""

    def __init__(self, drop_every: int = 0, silent_streams: int = 0) -> None:
        self.drop_every = drop_every
        self.silent_streams = silent_streams
        self.stored: dict[int, pb.Event] = {}
        self.welcomes: list[int] = []
        self.resent_after_welcome: list[int] = []
        self.lost: list[int] = []
        self.drops = 0
        self.trace_contexts: list[dict[str, str]] = []

    @property
    def hwm(self) -> int:
        return max(self.stored, default=0)

    async def Stream(
        self, request_iterator: AsyncIterator[pb.AgentMessage], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.CloudMessage]:
        hello = await anext(aiter(request_iterator))
        assert hello.WhichOneof("body") == "hello"
        welcome_seq = self.hwm
        self.welcomes.append(welcome_seq)
        stream_number = len(self.welcomes)
        yield pb.CloudMessage(welcome=pb.Welcome(acked_seq=welcome_seq, max_batch_events=1000))
        batches = 0
        async for message in request_iterator:
            batches += 1
            self.trace_contexts.append(dict(message.batch.trace_context))
            dropping = self.drop_every and batches % self.drop_every == 0
            self.drops += bool(dropping)
            if dropping and self.drops % 2:
                self.lost.extend(event.seq for event in message.batch.events)
                await context.abort(grpc.StatusCode.UNAVAILABLE, "injected: batch lost on the way")
            for event in message.batch.events:
                if event.seq <= welcome_seq:
                    self.resent_after_welcome.append(event.seq)
                if event.seq > self.hwm:
                    assert event.seq == self.hwm + 1, f"gap before seq {event.seq}"
                    self.stored[event.seq] = event
            if dropping:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "injected: stored, but the ack is lost")
            if stream_number <= self.silent_streams:
                continue  # stored, never acknowledged
            yield pb.CloudMessage(ack=pb.Ack(acked_seq=self.hwm))


@pytest.fixture
async def faulty_server() -> AsyncIterator[Callable[[FaultyIngest], Any]]:
    servers: list[grpc.aio.Server] = []

    async def start(servicer: FaultyIngest) -> str:
        server = grpc.aio.server()
        ingest_pb2_grpc.add_IngestServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        await server.stop(None)


async def test_dropped_streams_resume_without_loss_or_resending_acked_events(
    faulty_server: Callable[[FaultyIngest], Any],
    make_settings: Callable[..., AgentSettings],
    start_sender: Callable[..., Any],
) -> None:
    ingest = FaultyIngest(drop_every=3)
    target = await faulty_server(ingest)
    running: Running = await start_sender(
        make_settings(server=target, batch_max_events=7, max_inflight_batches=2)
    )
    producer = asyncio.create_task(running.produce(400, chunk=13))
    await async_wait_until(lambda: running.spool.spool.acked_seq == 400, timeout_s=30, what="all 400 acked")
    await producer
    assert sorted(ingest.stored) == list(range(1, 401))
    assert [ingest.stored[n].window_focus.title for n in range(1, 401)] == [f"e{n}" for n in range(1, 401)]
    assert len(ingest.welcomes) >= 10, "the stream was dropped many times"
    assert ingest.resent_after_welcome == [], "an event the cloud had declared stored was sent again"
    assert ingest.lost, "some batches were lost on the way"
    assert running.spool.depth == 0


async def test_missing_acks_time_out_and_the_next_stream_delivers(
    faulty_server: Callable[[FaultyIngest], Any],
    make_settings: Callable[..., AgentSettings],
    start_sender: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ingest = FaultyIngest(silent_streams=1)
    target = await faulty_server(ingest)
    running: Running = await start_sender(
        make_settings(server=target, ack_timeout_s=0.5, batch_max_events=10)
    )
    with caplog.at_level(logging.WARNING, logger="session_agent.sender"):
        await running.produce(50)
        await async_wait_until(lambda: running.spool.spool.acked_seq == 50, what="all 50 acked")
    assert "no Ack for seq" in caplog.text
    assert len(ingest.welcomes) == 2
    assert ingest.welcomes[1] > 0, "the silent stream had stored events; the next Welcome said so"
    assert ingest.resent_after_welcome == []
    assert sorted(ingest.stored) == list(range(1, 51))
    assert isinstance(running.sender.last_error, AckTimeoutError)


async def test_batches_carry_trace_context_and_metrics_are_recorded(
    faulty_server: Callable[[FaultyIngest], Any],
    make_settings: Callable[..., AgentSettings],
    start_sender: Callable[..., Any],
) -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    ingest = FaultyIngest()
    target = await faulty_server(ingest)
    running: Running = await start_sender(
        make_settings(server=target, batch_max_events=10),
        tracer=tracer_provider.get_tracer("test"),
        meter=meter_provider.get_meter("test"),
    )
    await running.produce(30, chunk=10)
    await async_wait_until(lambda: running.spool.spool.acked_seq == 30, what="all 30 acked")

    sent = [s for s in spans.get_finished_spans() if s.name == "agent.send_batch"]
    assert len(sent) == len(ingest.trace_contexts) >= 3
    for span, context in zip(sent, ingest.trace_contexts, strict=True):
        version, trace_id, span_id, _ = context["traceparent"].split("-")
        assert (version, int(trace_id, 16), int(span_id, 16)) == (
            "00",
            span.context.trace_id,
            span.context.span_id,
        )

    points = {
        metric.name: metric.data.data_points
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert sum(p.count for p in points["shadowdesk.agent.ack_latency"]) == len(sent)
    assert sum(p.value for p in points["shadowdesk.agent.sent_events"]) == 30
    assert sum(p.value for p in points["shadowdesk.agent.sent_bytes"]) > 30 * 10
    assert [p.value for p in points["shadowdesk.agent.spool_depth"]] == [0]
    tracer_provider.shutdown()
    meter_provider.shutdown()
