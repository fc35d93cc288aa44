"""parse_agent_message: the C fast path for unknown fields must not change what is accepted."""

from __future__ import annotations

import time

import pytest

from cloud_infer.errors import InvalidMessageError
from cloud_infer.ingest.protocol import parse_agent_message, validate_batch
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.cloud import focus
from tests.support.ingest_limits import LIMITS, NOW_NS

_UNKNOWN_VARINT_99 = bytes([0x98, 0x06, 0x01])  # field 99, varint 1: not in shadowdesk.v1


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field; payloads here stay under 128 bytes, so the length is one byte."""
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_unknown_field_deep_inside_an_event_is_named_by_path() -> None:
    t0 = time.time_ns()
    first = focus(1, t0).SerializeToString()
    focus_bytes = pb.WindowFocus(app_id="xterm", title="shell").SerializeToString()
    second_with_unknown = (
        pb.Event(seq=2, time_unix_nano=t0).SerializeToString()
        + _field(10, focus_bytes + _UNKNOWN_VARINT_99)  # Event.window_focus
    )
    data = _field(2, _field(1, first) + _field(1, second_with_unknown))  # AgentMessage.batch.events

    with pytest.raises(
        InvalidMessageError, match=r"AgentMessage\.batch\.events\[1\]\.window_focus has unknown"
    ):
        parse_agent_message(data)


def test_non_canonical_encoding_without_unknown_fields_is_accepted() -> None:
    # A scalar sent twice is valid protobuf (the last one wins) but re-serializes smaller.
    hello = pb.Hello(session_id="s1", user_id="u1", agent_version="test/1").SerializeToString()
    doubled = _field(1, b"ignored") + hello  # Hello.session_id twice
    message = parse_agent_message(_field(1, doubled))
    assert message.hello.session_id == "s1"
    assert message.ByteSize() < len(doubled) + 2


def test_well_formed_batch_parses_to_the_same_message() -> None:
    t0 = time.time_ns()
    sent = pb.AgentMessage(batch=pb.EventBatch(events=[focus(1, t0), focus(2, t0 + 1)]))
    assert parse_agent_message(sent.SerializeToString()) == sent


@pytest.mark.parametrize(
    "event",
    [
        pb.Event(app_fault=pb.AppFault(app_id="x" * 300)),
        pb.Event(app=pb.AppLifecycle(kind=pb.AppLifecycle.KIND_STARTED, app_version="v" * 300)),
        pb.Event(session_info=pb.SessionInfo(image="i" * 300)),
        pb.Event(metrics=pb.SystemMetrics(top_cpu=[pb.ProcessUsage(name="n" * 300)])),
        pb.Event(metrics=pb.SystemMetrics(top_memory=[pb.ProcessUsage(name="n")] * 33)),
    ],
)
def test_the_ops_events_strings_and_lists_are_bounded(event: pb.Event) -> None:
    event.seq, event.time_unix_nano = 1, NOW_NS
    with pytest.raises(InvalidMessageError, match="more than"):
        validate_batch(pb.EventBatch(events=[event]), LIMITS, NOW_NS)
