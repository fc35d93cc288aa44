"""Property tests of the ingest validators: whatever an agent sends, they accept it or refuse it cleanly.

``parse_agent_message`` and ``validate_hello``/``validate_batch`` stand between the network and the
store, so on any bytes they must either accept or raise ``InvalidMessageError``/``MessageTooLargeError``
(which the servicer turns into INVALID_ARGUMENT/RESOURCE_EXHAUSTED); any other exception would end the
stream as INTERNAL. And every well-formed message an agent may send must be accepted. Seeded and
bounded so that the whole file takes seconds.
"""

from __future__ import annotations

import io
from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from cloud_infer.errors import InvalidMessageError, MessageTooLargeError
from cloud_infer.ingest.protocol import parse_agent_message, validate_batch, validate_hello
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.errors import InvalidNameError
from recall_store.naming import validate_id
from tests.support.ingest_limits import LIMITS, NOW_NS

REFUSALS = (InvalidMessageError, MessageTooLargeError)
OLDEST_NS = NOW_NS - LIMITS.max_event_age_ns
NEWEST_NS = NOW_NS + LIMITS.max_clock_skew_ns
UINT64_MAX = 2**64 - 1
MARKER = "\x01MARK\x01"  # replaced in the encoded bytes by invalid UTF-8 of the same length

FUZZ = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _image(image_format: str, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(out, format=image_format)
    return out.getvalue()


# (image, mime type, width, height) of real frames as agents send them.
FRAMES = [
    (_image("PNG", (64, 48)), "image/png", 64, 48),
    (_image("JPEG", (40, 30)), "image/jpeg", 40, 30),
    (_image("WEBP", (33, 17)), "image/webp", 33, 17),
]

# Any Unicode protobuf can carry (lone surrogates cannot be encoded as UTF-8).
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}", fullmatch=True)
uint32s = st.integers(0, 2**32 - 1)
uint64s = st.integers(0, UINT64_MAX)
float32s = st.floats(width=32)
in_window = st.one_of(
    st.integers(OLDEST_NS, NEWEST_NS),
    st.sampled_from([OLDEST_NS, OLDEST_NS + 1, NOW_NS, NEWEST_NS - 1, NEWEST_NS]),
)


def _kinds() -> st.SearchStrategy[dict[str, Any]]:
    """One ``Event.kind`` as keyword arguments of ``pb.Event``, valid under LIMITS."""
    frame = st.sampled_from(FRAMES).flatmap(
        lambda f: st.builds(
            pb.ScreenFrame,
            image=st.just(f[0]),
            mime_type=st.just(f[1]),
            width=st.just(f[2]),
            height=st.just(f[3]),
            dhash=uint64s,
            window_id=uint64s,
        )
    )
    return st.one_of(
        st.builds(
            pb.WindowFocus,
            window_id=uint64s,
            app_id=texts,
            wm_class=texts,
            title=texts,
            pid=uint32s,
            private=st.booleans(),
        ).map(lambda m: {"window_focus": m}),
        st.builds(
            pb.AppLifecycle,
            kind=st.sampled_from([pb.AppLifecycle.KIND_STARTED, pb.AppLifecycle.KIND_EXITED]),
            app_id=texts,
            pid=uint32s,
            executable=texts,
        ).map(lambda m: {"app": m}),
        frame.map(lambda m: {"frame": m}),
        st.builds(pb.TextSnapshot, window_id=uint64s, app_id=texts, source=texts, text=texts).map(
            lambda m: {"text": m}
        ),
        st.builds(pb.ClipboardText, app_id=texts, text=texts, primary=st.booleans()).map(
            lambda m: {"clipboard": m}
        ),
        st.builds(pb.UrlVisit, app_id=texts, url=texts.filter(bool), title=texts).map(lambda m: {"url": m}),
        st.builds(
            pb.InputActivity,
            interval_ms=uint32s,
            key_presses=uint32s,
            pointer_clicks=uint32s,
            pointer_moves=uint32s,
            idle_ms=uint32s,
        ).map(lambda m: {"input": m}),
        st.builds(
            pb.SystemMetrics,
            cpu_percent=float32s,
            memory_used_bytes=uint64s,
            memory_total_bytes=uint64s,
            load_1m=float32s,
            disk_used_percent=float32s,
            net_rx_bytes=uint64s,
            net_tx_bytes=uint64s,
            process_count=uint32s,
            spool_depth=uint64s,
        ).map(lambda m: {"metrics": m}),
    )


@st.composite
def batches(draw: st.DrawFn) -> pb.EventBatch:
    """A batch a correct agent may send: 1..max events, seqs strictly increasing, times in the window."""
    seqs = sorted(draw(st.sets(st.integers(1, UINT64_MAX), min_size=1, max_size=LIMITS.max_batch_events)))
    events = [pb.Event(seq=seq, time_unix_nano=draw(in_window), **draw(_kinds())) for seq in seqs]
    trace = draw(st.dictionaries(texts, texts, max_size=8))
    return pb.EventBatch(events=events, trace_context=trace)


hellos = st.builds(
    pb.Hello,
    session_id=ids,
    user_id=ids,
    agent_version=texts.filter(bool),
    capabilities=st.lists(texts, max_size=64),
    hostname=texts,
)
messages = st.one_of(
    hellos.map(lambda h: pb.AgentMessage(hello=h)), batches().map(lambda b: pb.AgentMessage(batch=b))
)


def receive(data: bytes) -> pb.AgentMessage:
    """What the servicer does with one request: parse it, then validate its body."""
    message = parse_agent_message(data)
    if message.WhichOneof("body") == "hello":
        validate_hello(message.hello)
    else:
        validate_batch(message.batch, LIMITS, NOW_NS)
    return message


def accepted_or_refused(data: bytes) -> bool:
    """True if ``data`` is accepted, False if refused with one of REFUSALS; anything else propagates."""
    try:
        receive(data)
    except REFUSALS:
        return False
    return True


@FUZZ
@given(messages)
def test_every_well_formed_message_is_accepted_unchanged(message: pb.AgentMessage) -> None:
    assert receive(message.SerializeToString()) == message


@FUZZ
@given(st.binary(max_size=512))
@example(b"")
@example(b"\x12\x00")  # an empty batch
@example(b"\x0a\x00")  # an empty hello
@example(b"\x12\x02\x0a\x00")  # a batch of one empty event
@example(b"\x0b\x0c")  # a group: a wire type protobuf dropped
@example(b"\xff" * 11)  # a varint longer than 10 bytes
def test_arbitrary_bytes_are_accepted_or_refused(data: bytes) -> None:
    accepted_or_refused(data)


@FUZZ
@given(messages, st.data())
def test_truncated_messages_are_refused_or_still_valid(message: pb.AgentMessage, data: st.DataObject) -> None:
    encoded = message.SerializeToString()
    cut = data.draw(st.integers(0, len(encoded) - 1))
    accepted_or_refused(encoded[:cut])


@FUZZ
@given(messages, st.data())
def test_messages_with_flipped_bytes_are_accepted_or_refused(
    message: pb.AgentMessage, data: st.DataObject
) -> None:
    encoded = bytearray(message.SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(encoded) - 1))
        encoded[position] ^= data.draw(st.integers(1, 255))
    accepted_or_refused(bytes(encoded))


@FUZZ
@given(st.sampled_from(FRAMES), st.data())
def test_frames_with_broken_images_are_accepted_or_refused(
    frame: tuple[bytes, str, int, int], data: st.DataObject
) -> None:
    """Corrupt image headers and bodies reach Pillow: its errors must come back as refusals."""
    image = bytearray(frame[0])
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, min(len(image), 64) - 1))  # the header, mostly
        image[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(image)))
    mime = data.draw(st.sampled_from([frame[1], "image/png", "image/jpeg", "image/webp", "image/gif", ""]))
    event = pb.Event(
        seq=1,
        time_unix_nano=NOW_NS,
        frame=pb.ScreenFrame(image=bytes(image[:cut]), mime_type=mime, width=frame[2], height=frame[3]),
    )
    accepted_or_refused(pb.AgentMessage(batch=pb.EventBatch(events=[event])).SerializeToString())


@FUZZ
@given(messages, st.binary(min_size=1, max_size=4), st.data())
def test_invalid_utf8_in_any_string_is_refused(
    message: pb.AgentMessage, bad: bytes, data: st.DataObject
) -> None:
    """Invalid UTF-8 put into a string field, wherever it is, is refused by the parser."""
    strings = _string_fields(message)
    assume(strings)
    owner, name = data.draw(st.sampled_from(strings))
    setattr(owner, name, MARKER)
    encoded = message.SerializeToString()
    invalid = (b"\xff" + bad + b"\xff" * len(MARKER))[: len(MARKER)]  # 0xff never occurs in UTF-8
    assert encoded.count(MARKER.encode()) == 1
    assert not accepted_or_refused(encoded.replace(MARKER.encode(), invalid))


def _string_fields(message: Any) -> list[tuple[Any, str]]:
    """(message, field name) of every singular string field in ``message``'s tree."""
    return [
        (part, field.name)
        for part in _parts(message)
        for field in part.DESCRIPTOR.fields
        if field.type == field.TYPE_STRING and not field.is_repeated
    ]


def _parts(message: Any) -> list[Any]:
    """``message`` and every message set inside it (map entries are not messages in Python)."""
    found = [message]
    for field, value in message.ListFields():
        if field.message_type is not None and not field.message_type.GetOptions().map_entry:
            for child in value if field.is_repeated else [value]:
                found.extend(_parts(child))
    return found


@FUZZ
@given(messages, st.integers(1, 2**29 - 1), st.sampled_from([0, 1, 2, 5]), st.data())
def test_unknown_fields_at_any_depth_are_refused(
    message: pb.AgentMessage, number: int, wire_type: int, data: st.DataObject
) -> None:
    part = data.draw(st.sampled_from(_parts(message)))
    assume(number not in part.DESCRIPTOR.fields_by_number)
    payload = {0: b"\x01", 1: b"\x00" * 8, 2: b"\x01x", 5: b"\x00" * 4}[wire_type]
    part.MergeFromString(_varint(number << 3 | wire_type) + payload)  # kept as an unknown field
    assert not accepted_or_refused(message.SerializeToString())


@FUZZ
@given(messages, st.binary(min_size=1, max_size=16), st.data())
def test_messages_with_spliced_bytes_are_accepted_or_refused(
    message: pb.AgentMessage, spliced: bytes, data: st.DataObject
) -> None:
    encoded = message.SerializeToString()
    position = data.draw(st.integers(0, len(encoded)))
    accepted_or_refused(encoded[:position] + spliced + encoded[position:])


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@FUZZ
@given(st.lists(uint64s, min_size=1, max_size=LIMITS.max_batch_events))
@example([0])
@example([1, 1])
@example([2, 1])
@example([UINT64_MAX - 1, UINT64_MAX])
def test_a_batch_is_accepted_exactly_when_its_seqs_start_at_1_or_more_and_increase(seqs: list[int]) -> None:
    events = [pb.Event(seq=seq, time_unix_nano=NOW_NS, metrics=pb.SystemMetrics()) for seq in seqs]
    increasing = all(a < b for a, b in zip([0, *seqs], seqs, strict=False))
    assert accepted_or_refused(pb.AgentMessage(batch=pb.EventBatch(events=events)).SerializeToString()) is (
        increasing
    )


@FUZZ
@given(
    st.one_of(uint64s, st.integers(OLDEST_NS - 3, OLDEST_NS + 3), st.integers(NEWEST_NS - 3, NEWEST_NS + 3))
)
def test_an_event_time_is_accepted_exactly_within_the_skew_and_age_limits(time_ns: int) -> None:
    event = pb.Event(seq=1, time_unix_nano=time_ns, metrics=pb.SystemMetrics())
    message = pb.AgentMessage(batch=pb.EventBatch(events=[event]))
    assert accepted_or_refused(message.SerializeToString()) is (OLDEST_NS <= time_ns <= NEWEST_NS)


@FUZZ
@given(st.integers(LIMITS.max_batch_events + 1, LIMITS.max_batch_events + 50))
def test_a_batch_over_max_batch_events_is_too_large(count: int) -> None:
    events = [pb.Event(seq=i, time_unix_nano=NOW_NS, metrics=pb.SystemMetrics()) for i in range(1, count + 1)]
    try:
        receive(pb.AgentMessage(batch=pb.EventBatch(events=events)).SerializeToString())
    except MessageTooLargeError:
        return
    raise AssertionError(f"a batch of {count} events was accepted")


@FUZZ
@given(hellos, st.sampled_from(["session_id", "user_id"]), st.one_of(texts, ids.map(lambda i: i + "/"), ids))
@example(pb.Hello(session_id="s", user_id="u", agent_version="a"), "user_id", "u" * 128)
@example(pb.Hello(session_id="s", user_id="u", agent_version="a"), "user_id", "u" * 129)
@example(pb.Hello(session_id="s", user_id="u", agent_version="a"), "session_id", "../etc")
@example(pb.Hello(session_id="s", user_id="u", agent_version="a"), "session_id", "s\n")
def test_a_hello_is_accepted_exactly_when_its_ids_are_store_ids(
    hello: pb.Hello, field: str, value: str
) -> None:
    """Hello must refuse every id the store would refuse later, and only those."""
    setattr(hello, field, value)
    try:
        validate_id(field, value)
        valid = True
    except InvalidNameError:
        valid = False
    assert accepted_or_refused(pb.AgentMessage(hello=hello).SerializeToString()) is valid


@FUZZ
@given(
    st.sampled_from(
        [
            ("window_focus", "title", LIMITS.max_title_chars),
            ("text", "text", LIMITS.max_text_chars),
            ("clipboard", "text", LIMITS.max_text_chars),
            ("url", "url", LIMITS.max_url_chars),
            ("url", "title", LIMITS.max_title_chars),
            ("window_focus", "app_id", 256),
            ("app", "executable", 4096),
        ]
    ),
    st.integers(-2, 2),
)
def test_strings_are_accepted_exactly_up_to_their_limit(field: tuple[str, str, int], over: int) -> None:
    kind, name, limit = field
    event = pb.Event(seq=1, time_unix_nano=NOW_NS)
    part = getattr(event, kind)
    part.SetInParent()
    setattr(part, name, "é" * (limit + over))  # characters are counted, not bytes
    if kind == "url" and name != "url":
        part.url = "https://example.com/"
    if kind == "app":
        part.kind = pb.AppLifecycle.KIND_STARTED
    message = pb.AgentMessage(batch=pb.EventBatch(events=[event]))
    assert accepted_or_refused(message.SerializeToString()) is (over <= 0)


@FUZZ
@given(st.dictionaries(texts, texts, max_size=12), st.integers(0, 600))
def test_a_trace_context_is_accepted_up_to_8_entries_of_512_characters(
    trace: dict[str, str], padding: int
) -> None:
    if trace:
        first = next(iter(trace))
        trace[first] = "v" * padding
    event = pb.Event(seq=1, time_unix_nano=NOW_NS, metrics=pb.SystemMetrics())
    message = pb.AgentMessage(batch=pb.EventBatch(events=[event], trace_context=trace))
    valid = len(trace) <= 8 and all(len(key) + len(value) <= 512 for key, value in trace.items())
    assert accepted_or_refused(message.SerializeToString()) is valid
