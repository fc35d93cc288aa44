"""Ingest over a real gRPC server (port 0) and a real store: acks, resume, dedup, and bad input."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cloud_infer.auth import issue_token
from cloud_infer.config import ServerSettings
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.event_log import EventLog
from tests.support.cloud import (
    NS,
    SECRET,
    AgentStream,
    FaultyStore,
    batch,
    focus,
    frame,
    hello,
    ingest_token,
    metrics,
    now_ns,
    png,
)
from tests.support.ingest_server import IngestServer, start_ingest
from tests.support.otel import span_exporter


async def open_agent(ingest: IngestServer, user: str, session: str) -> tuple[AgentStream, pb.Welcome]:
    agent = AgentStream(ingest.target, ingest_token(user, session))
    return agent, await agent.open(user, session)


async def test_happy_path_acks_each_batch_after_storing_it(
    ingest: IngestServer, store: FaultyStore, settings: ServerSettings, user: str, session: str
) -> None:
    t0 = now_ns()
    image = png(color=(1, 2, 3))
    agent, welcome = await open_agent(ingest, user, session)
    try:
        assert welcome.acked_seq == 0
        assert welcome.max_batch_events == settings.max_batch_events
        assert welcome.max_message_bytes == settings.max_message_bytes
        assert await agent.ack([focus(1, t0), frame(2, t0 + NS, image)]) == 2
        assert await agent.ack([metrics(3, t0 + 2 * NS)]) == 3
        # Acked means stored: read back right after the ack, with no waiting.
        log = EventLog(store)
        assert await log.last_seq(user, session) == 3
        events = await log.read(user, t0, t0 + 3 * NS)
        assert [(e.session_id, e.event.seq) for e in events] == [(session, 1), (session, 2), (session, 3)]
        stored_frame = events[1].event.frame
        assert stored_frame.image == b""
        assert stored_frame.stored_key == f"frames/{session}/000000000002.png"
        assert await log.frame(user, stored_frame.stored_key) == image
        assert events[0].event.window_focus.title == "shell"
    finally:
        await agent.close()


async def test_resume_after_restart_welcomes_with_stored_high_water_mark(
    ingest: IngestServer, store: FaultyStore, settings: ServerSettings, user: str, session: str
) -> None:
    t0 = now_ns()
    agent, _ = await open_agent(ingest, user, session)
    assert await agent.ack([focus(1, t0), metrics(2, t0 + 1)]) == 2
    assert await agent.ack([metrics(3, t0 + 2), metrics(4, t0 + 3)]) == 4
    await agent.close()
    await ingest.server.stop(None)

    restarted = await start_ingest(settings, store)
    try:
        agent, welcome = await open_agent(restarted, user, session)
        assert welcome.acked_seq == 4
        assert await agent.ack([metrics(5, t0 + 4)]) == 5
        await agent.close()
    finally:
        await restarted.server.stop(None)


async def test_duplicates_are_dropped_so_each_event_is_stored_once(
    ingest: IngestServer, store: FaultyStore, user: str, session: str
) -> None:
    t0 = now_ns()
    first = [metrics(seq, t0 + seq) for seq in range(1, 6)]
    agent, _ = await open_agent(ingest, user, session)
    assert await agent.ack(first) == 5
    assert await agent.ack(first) == 5  # a resend after a lost ack
    assert await agent.ack([metrics(seq, t0 + seq) for seq in range(3, 9)]) == 8  # overlapping
    await agent.close()
    # A reconnecting agent that resends from an old spool position is deduplicated too.
    agent, welcome = await open_agent(ingest, user, session)
    assert welcome.acked_seq == 8
    assert await agent.ack([metrics(seq, t0 + seq) for seq in range(7, 11)]) == 10
    await agent.close()

    events = await EventLog(store).read(user, t0, t0 + NS)
    assert [e.event.seq for e in events] == list(range(1, 11))
    segments = await store.list_keys(user, f"events/{session}/")
    assert len(segments) == 3


async def test_concurrent_streams_of_one_session_never_store_a_seq_twice(
    ingest: IngestServer, store: FaultyStore, user: str, session: str
) -> None:
    t0 = now_ns()
    events = [metrics(seq, t0 + seq) for seq in range(1, 21)]
    agents = [await open_agent(ingest, user, session) for _ in range(3)]
    for agent, _ in agents:
        await agent.call.write(batch(events))
    acks = [await agent.call.read() for agent, _ in agents]
    assert [a.ack.acked_seq for a in acks if isinstance(a, pb.CloudMessage)] == [20, 20, 20]
    for agent, _ in agents:
        await agent.close()
    assert len(await store.list_keys(user, f"events/{session}/")) == 1


async def test_store_outage_answers_unavailable_and_the_retry_succeeds(
    ingest: IngestServer, store: FaultyStore, user: str, session: str
) -> None:
    t0 = now_ns()
    agent, _ = await open_agent(ingest, user, session)
    assert await agent.ack([metrics(1, t0)]) == 1
    store.down = True
    code, details = await agent.status(batch([metrics(2, t0 + 1), metrics(3, t0 + 2)]))
    await agent.close()
    assert code == grpc.StatusCode.UNAVAILABLE, details
    assert "unavailable" in details

    store.down = False
    agent, welcome = await open_agent(ingest, user, session)
    assert welcome.acked_seq == 1
    assert await agent.ack([metrics(2, t0 + 1), metrics(3, t0 + 2)]) == 3
    await agent.close()
    assert [e.event.seq for e in await EventLog(store).read(user, t0, t0 + NS)] == [1, 2, 3]


def _with_unknown_hello_field(user: str, session: str) -> bytes:
    inner = pb.Hello(session_id=session, user_id=user, agent_version="test/1").SerializeToString()
    inner += bytes([0x98, 0x06, 0x01])  # field 99, varint 1: not in shadowdesk.v1
    return bytes([0x0A, len(inner)]) + inner


def _with_invalid_utf8_title(t0: int) -> bytes:
    data = batch([focus(1, t0, title="@@@@")])
    return data.replace(b"@@@@", b"\xff\xfe\xc3\x28")


def _expired_token(user: str, session: str) -> str:
    past = int(time.time()) - 3600
    claims = {
        "iss": "shadowdesk",
        "aud": "shadowdesk-ingest",
        "sub": user,
        "scope": "ingest",
        "sid": session,
        "iat": past,
        "exp": past + 60,
        "jti": "expired",
    }
    return jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "k1"})


# name -> (token factory, messages factory, expected code, text in details)
BadCase = tuple[
    Callable[[str, str], str | None],
    Callable[[str, str, int], list[bytes]],
    grpc.StatusCode,
    str,
]
GOOD_TOKEN = ingest_token
BAD_CASES: dict[str, BadCase] = {
    "oversized message": (
        GOOD_TOKEN,
        lambda u, s, t: [hello(u, s), batch([frame(1, t, image=b"x" * 300_000)])],
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "larger than max",
    ),
    "too many events": (
        GOOD_TOKEN,
        lambda u, s, t: [hello(u, s), batch([metrics(i, t) for i in range(1, 52)])],
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "max_batch_events=50",
    ),
    "frame over max_frame_bytes": (
        GOOD_TOKEN,
        lambda u, s, t: [hello(u, s), batch([frame(1, t, image=b"x" * 200_000)])],
        grpc.StatusCode.INVALID_ARGUMENT,
        "max_frame_bytes",
    ),
    "malformed bytes": (
        GOOD_TOKEN,
        lambda u, s, t: [b"\xff\xff\xff\xff"],
        grpc.StatusCode.INVALID_ARGUMENT,
        "malformed AgentMessage",
    ),
    "unknown field": (
        GOOD_TOKEN,
        lambda u, s, t: [_with_unknown_hello_field(u, s)],
        grpc.StatusCode.INVALID_ARGUMENT,
        "AgentMessage.hello has unknown fields [99]",
    ),
    "invalid utf-8": (
        GOOD_TOKEN,
        lambda u, s, t: [hello(u, s), _with_invalid_utf8_title(t)],
        grpc.StatusCode.INVALID_ARGUMENT,
        "AgentMessage.batch.events.window_focus.title is not valid UTF-8",
    ),
    "empty event kind": (
        GOOD_TOKEN,
        lambda u, s, t: [hello(u, s), batch([pb.Event(seq=1, time_unix_nano=t)])],
        grpc.StatusCode.INVALID_ARGUMENT,
        "event seq 1 has no kind",
    ),
    "non-increasing seq": (
        GOOD_TOKEN,
        lambda u, s, t: [hello(u, s), batch([metrics(2, t), metrics(2, t)])],
        grpc.StatusCode.INVALID_ARGUMENT,
        "event seq 2 follows 2",
    ),
    "clock skewed into the future": (
        GOOD_TOKEN,
        lambda u, s, t: [hello(u, s), batch([metrics(1, t + 3600 * NS)])],
        grpc.StatusCode.INVALID_ARGUMENT,
        "in the future",
    ),
    "older than max age": (
        GOOD_TOKEN,
        lambda u, s, t: [hello(u, s), batch([metrics(1, t - 8 * 24 * 3600 * NS)])],
        grpc.StatusCode.INVALID_ARGUMENT,
        "older than max_event_age_s",
    ),
    "stored_key set by agent": (
        GOOD_TOKEN,
        lambda u, s, t: [
            hello(u, s),
            batch(
                [
                    pb.Event(
                        seq=1,
                        time_unix_nano=t,
                        frame=pb.ScreenFrame(
                            image=b"x", mime_type="image/png", width=1, height=1, stored_key="frames/x/1.png"
                        ),
                    )
                ]
            ),
        ],
        grpc.StatusCode.INVALID_ARGUMENT,
        "stored_key is set by the cloud",
    ),
    "batch before hello": (
        GOOD_TOKEN,
        lambda u, s, t: [batch([metrics(1, t)])],
        grpc.StatusCode.INVALID_ARGUMENT,
        "first message of a stream must be Hello",
    ),
    "missing token": (
        lambda u, s: None,
        lambda u, s, t: [hello(u, s)],
        grpc.StatusCode.UNAUTHENTICATED,
        "missing authorization",
    ),
    "bad token": (
        lambda u, s: "not-a-jwt",
        lambda u, s, t: [hello(u, s)],
        grpc.StatusCode.UNAUTHENTICATED,
        "invalid token",
    ),
    "token signed with another secret": (
        lambda u, s: issue_token("another-secret-that-is-long-enough-123", u, "ingest", session_id=s),
        lambda u, s, t: [hello(u, s)],
        grpc.StatusCode.UNAUTHENTICATED,
        "Signature verification failed",
    ),
    "expired token": (
        _expired_token,
        lambda u, s, t: [hello(u, s)],
        grpc.StatusCode.UNAUTHENTICATED,
        "expired",
    ),
    "read token": (
        lambda u, s: issue_token(SECRET, u, "read"),
        lambda u, s, t: [hello(u, s)],
        grpc.StatusCode.UNAUTHENTICATED,
        "Audience",
    ),
    "token of another user": (
        lambda u, s: ingest_token("mallory@example.com", s),
        lambda u, s, t: [hello(u, s)],
        grpc.StatusCode.PERMISSION_DENIED,
        "another user or session",
    ),
    "token of another session": (
        lambda u, s: ingest_token(u, "other-desk"),
        lambda u, s, t: [hello(u, s)],
        grpc.StatusCode.PERMISSION_DENIED,
        "another user or session",
    ),
    "invalid session id": (
        lambda u, s: ingest_token(u, s),
        lambda u, s, t: [hello(u, "../escape")],
        grpc.StatusCode.INVALID_ARGUMENT,
        "Hello.session_id must be",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
async def test_bad_input_gets_its_status_and_leaves_other_sessions_alone(
    case: str, ingest: IngestServer, store: FaultyStore, user: str, session: str
) -> None:
    make_token, make_messages, expected_code, expected_text = BAD_CASES[case]
    t0 = now_ns()
    good_session = session + "-good"
    good, _ = await open_agent(ingest, user, good_session)
    assert await good.ack([metrics(1, t0)]) == 1

    bad = AgentStream(ingest.target, make_token(user, session))
    code, details = await bad.status(*make_messages(user, session, t0))
    await bad.close()
    assert code == expected_code, details
    assert expected_text in details

    # The concurrent session keeps working, and nothing of the bad stream was stored.
    assert await good.ack([metrics(2, t0 + 1)]) == 2
    await good.close()
    assert await store.list_keys(user, f"events/{session}/") == []
    assert await EventLog(store).last_seq(user, good_session) == 2


async def test_grpc_health_reports_ingest_serving(ingest: IngestServer) -> None:
    async with grpc.aio.insecure_channel(ingest.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service="shadowdesk.v1.Ingest"), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_batch_span_continues_the_agent_trace(ingest: IngestServer, user: str, session: str) -> None:
    exporter = span_exporter()
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    agent, _ = await open_agent(ingest, user, session)
    reply = await agent.send(batch([metrics(1, now_ns())], {"traceparent": f"00-{trace_id}-{parent_id}-01"}))
    await agent.close()
    assert reply.ack.acked_seq == 1
    spans = {span.name: span for span in exporter.get_finished_spans()}
    batch_span, write_span = spans["ingest.batch"], spans["store.write"]
    assert batch_span.context is not None and write_span.context is not None
    assert f"{batch_span.context.trace_id:032x}" == trace_id
    assert batch_span.parent is not None and f"{batch_span.parent.span_id:016x}" == parent_id
    assert write_span.parent is not None and write_span.parent.span_id == batch_span.context.span_id


def _screen_frame(seq: int, t_ns: int, image: bytes, mime: str, size: tuple[int, int]) -> pb.Event:
    width, height = size
    return pb.Event(
        seq=seq,
        time_unix_nano=t_ns,
        frame=pb.ScreenFrame(image=image, mime_type=mime, width=width, height=height, window_id=7),
    )


@pytest.mark.parametrize(
    ("case", "size", "expected"),
    [
        ("bomb", (64, 48), "event seq 2: frame is really 12000x12000, declared 64x48"),
        (
            "over-pixel-limit",
            (5000, 4000),
            "event seq 2: frame is 5000x4000 = 20000000 pixels, more than max_frame_pixels=16777216",
        ),
        ("jpeg-sent-as-png", (64, 48), "event seq 2: frame is JPEG data, declared image/png"),
    ],
    ids=["bomb", "over-pixel-limit", "jpeg-sent-as-png"],
)
async def test_frame_whose_header_contradicts_it_is_refused_and_nothing_of_its_batch_stored(
    case: str,
    size: tuple[int, int],
    expected: str,
    ingest: IngestServer,
    store: FaultyStore,
    user: str,
    session: str,
) -> None:
    from tests.support.images import encode, png_bomb

    image = {
        "bomb": lambda: png_bomb(12000, 12000),  # 144 MP in ~18 KB, well under max_frame_bytes
        "over-pixel-limit": lambda: png_bomb(5000, 4000),  # both sides under max_frame_dimension
        "jpeg-sent-as-png": lambda: encode("JPEG"),
    }[case]()
    t0 = now_ns()
    agent, _ = await open_agent(ingest, user, session)
    frame_event = _screen_frame(2, t0 + 1, image, "image/png", size)
    code, details = await agent.status(batch([focus(1, t0), frame_event]))
    await agent.close()
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert details == expected
    # The valid focus event before it went nowhere either: the batch is refused whole.
    assert await store.list_keys(user, f"events/{session}/") == []
    assert await store.list_keys(user, f"frames/{session}/") == []
    assert await EventLog(store).last_seq(user, session) == 0
