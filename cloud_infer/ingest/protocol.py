"""Parsing and validation of agent messages: everything the stream protocol requires of them.

Each check raises InvalidMessageError (or MessageTooLargeError for size limits of a whole message)
with a message naming the field, so a rejected agent knows what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from cloud_infer.config import ServerSettings
from cloud_infer.errors import InvalidMessageError, MessageTooLargeError
from cloud_infer.frames import inspect_frame
from cloud_infer.ingest.wire import describe_decode_error
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.errors import InvalidNameError
from recall_store.event_log import FRAME_EXTENSIONS
from recall_store.naming import validate_id

_NS_PER_S = 1_000_000_000
_MAX_NAME_CHARS = 256
_MAX_PATH_CHARS = 4096
_MAX_CAPABILITIES = 64
_MAX_TOP_PROCESSES = 32
_MAX_TRACE_ENTRIES = 8
_VALID_APP_KINDS = frozenset({pb.AppLifecycle.KIND_STARTED, pb.AppLifecycle.KIND_EXITED})
# Command ids are made by the cloud (cloud_infer.commands); an agent only echoes them.
_COMMAND_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VALID_RESULT_STATUSES = frozenset(pb.CommandResult.Status.values()) - {pb.CommandResult.STATUS_UNSPECIFIED}
_VALID_RECORDED_KINDS = frozenset(pb.RecordedAction.Kind.values()) - {pb.RecordedAction.KIND_UNSPECIFIED}
_MAX_ROLE_CHARS = 64
_MAX_KEYS_CHARS = 64
MAX_ELEMENT_PATH = 64
MAX_WAITED_MS = 3_600_000
MAX_OBSERVED_ENTRIES = 32
MAX_COMMAND_ERROR_CHARS = 4096


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """The limits the server enforces on agents (see ServerSettings for each)."""

    max_message_bytes: int
    max_batch_events: int
    max_clock_skew_ns: int
    max_event_age_ns: int
    max_title_chars: int
    max_text_chars: int
    max_url_chars: int
    max_frame_bytes: int
    max_frame_dimension: int
    max_frame_pixels: int

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> IngestLimits:
        return cls(
            max_message_bytes=settings.max_message_bytes,
            max_batch_events=settings.max_batch_events,
            max_clock_skew_ns=int(settings.max_clock_skew_s * _NS_PER_S),
            max_event_age_ns=int(settings.max_event_age_s * _NS_PER_S),
            max_title_chars=settings.max_title_chars,
            max_text_chars=settings.max_text_chars,
            max_url_chars=settings.max_url_chars,
            max_frame_bytes=settings.max_frame_bytes,
            max_frame_dimension=settings.max_frame_dimension,
            max_frame_pixels=settings.max_frame_pixels,
        )


def parse_agent_message(data: bytes) -> pb.AgentMessage:
    """Parse one AgentMessage; reject malformed bytes, invalid UTF-8, unknown fields and empty bodies."""
    try:
        message = pb.AgentMessage.FromString(data)
    except DecodeError as exc:
        raise InvalidMessageError(
            f"malformed AgentMessage: {describe_decode_error(data, pb.AgentMessage.DESCRIPTOR)}"
        ) from exc
    # Fast path in C: without unknown fields, a canonically encoded message re-serializes to the
    # same size. Only when the sizes differ does the (slow, Python) walk look for the culprit; a
    # non-canonical encoding without unknown fields passes it.
    message.DiscardUnknownFields()
    if message.ByteSize() != len(data):
        _reject_unknown_fields(pb.AgentMessage.FromString(data), "AgentMessage")
    if message.WhichOneof("body") is None:
        raise InvalidMessageError("AgentMessage has no body (hello or batch)")
    return message


def _reject_unknown_fields(message: Message, path: str) -> None:
    unknown = UnknownFieldSet(message)
    if len(unknown):
        numbers = sorted({unknown[i].field_number for i in range(len(unknown))})
        raise InvalidMessageError(
            f"{path} has unknown fields {numbers}; this server speaks shadowdesk.v1 and does not accept them"
        )
    for field, value in message.ListFields():
        # Map entries here are string to string: they cannot carry unknown fields worth checking.
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        children = value if field.is_repeated else [value]
        for index, child in enumerate(children):
            suffix = f"[{index}]" if field.is_repeated else ""
            _reject_unknown_fields(child, f"{path}.{field.name}{suffix}")


def _check_length(name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidMessageError(f"{name} is {len(value)} characters, more than the limit of {limit}")


def validate_hello(hello: pb.Hello) -> None:
    """Required fields present, ids valid under the store's naming rule, strings bounded."""
    for name, value in (("session_id", hello.session_id), ("user_id", hello.user_id)):
        if not value:
            raise InvalidMessageError(f"Hello.{name} is required")
    if not hello.agent_version:
        raise InvalidMessageError("Hello.agent_version is required")
    try:
        validate_id("Hello.user_id", hello.user_id)
        validate_id("Hello.session_id", hello.session_id)
    except InvalidNameError as exc:
        raise InvalidMessageError(str(exc)) from exc
    _check_length("Hello.agent_version", hello.agent_version, _MAX_NAME_CHARS)
    _check_length("Hello.hostname", hello.hostname, _MAX_NAME_CHARS)
    _check_length("Hello.image", hello.image, _MAX_NAME_CHARS)
    if len(hello.capabilities) > _MAX_CAPABILITIES:
        raise InvalidMessageError(f"Hello.capabilities has more than {_MAX_CAPABILITIES} entries")
    for capability in hello.capabilities:
        _check_length("Hello.capabilities[]", capability, _MAX_NAME_CHARS)


def validate_batch(batch: pb.EventBatch, limits: IngestLimits, now_ns: int) -> None:
    """Events present, within limits, with strictly increasing seqs and plausible timestamps."""
    if not batch.events:
        raise InvalidMessageError("EventBatch has no events")
    if len(batch.events) > limits.max_batch_events:
        raise MessageTooLargeError(
            f"EventBatch has {len(batch.events)} events, more than max_batch_events={limits.max_batch_events}"
        )
    if len(batch.trace_context) > _MAX_TRACE_ENTRIES:
        raise InvalidMessageError(f"EventBatch.trace_context has more than {_MAX_TRACE_ENTRIES} entries")
    for key, value in batch.trace_context.items():
        _check_length(f"EventBatch.trace_context[{key[:32]!r}]", key + value, _MAX_NAME_CHARS * 2)
    previous_seq = 0
    for event in batch.events:
        if event.seq <= previous_seq:
            raise InvalidMessageError(
                f"event seq {event.seq} follows {previous_seq}: seqs must start at 1 and strictly increase"
            )
        previous_seq = event.seq
        _validate_event(event, limits, now_ns)


def _validate_event(event: pb.Event, limits: IngestLimits, now_ns: int) -> None:
    where = f"event seq {event.seq}"
    kind = event.WhichOneof("kind")
    if kind is None:
        raise InvalidMessageError(f"{where} has no kind (window_focus, frame, metrics, ...)")
    if event.time_unix_nano > now_ns + limits.max_clock_skew_ns:
        ahead_s = (event.time_unix_nano - now_ns) / _NS_PER_S
        raise InvalidMessageError(
            f"{where} is {ahead_s:.0f}s in the future, beyond max_clock_skew_s; check the desktop clock"
        )
    if event.time_unix_nano < now_ns - limits.max_event_age_ns:
        raise InvalidMessageError(
            f"{where} is older than max_event_age_s (time_unix_nano={event.time_unix_nano})"
        )
    if kind == "window_focus":
        _check_length(f"{where}: window_focus.app_id", event.window_focus.app_id, _MAX_NAME_CHARS)
        _check_length(f"{where}: window_focus.wm_class", event.window_focus.wm_class, _MAX_NAME_CHARS * 2)
        _check_length(f"{where}: window_focus.title", event.window_focus.title, limits.max_title_chars)
    elif kind == "app":
        if event.app.kind not in _VALID_APP_KINDS:
            raise InvalidMessageError(f"{where}: app.kind must be KIND_STARTED or KIND_EXITED")
        _check_length(f"{where}: app.app_id", event.app.app_id, _MAX_NAME_CHARS)
        _check_length(f"{where}: app.executable", event.app.executable, _MAX_PATH_CHARS)
        _check_length(f"{where}: app.app_version", event.app.app_version, _MAX_NAME_CHARS)
    elif kind == "app_fault":
        _check_length(f"{where}: app_fault.app_id", event.app_fault.app_id, _MAX_NAME_CHARS)
        _check_length(f"{where}: app_fault.executable", event.app_fault.executable, _MAX_PATH_CHARS)
        _check_length(f"{where}: app_fault.app_version", event.app_fault.app_version, _MAX_NAME_CHARS)
    elif kind == "session_info":
        info = event.session_info
        for field, value in (
            ("hostname", info.hostname),
            ("image", info.image),
            ("agent_version", info.agent_version),
        ):
            _check_length(f"{where}: session_info.{field}", value, _MAX_NAME_CHARS)
    elif kind == "metrics":
        for field, top in (("top_cpu", event.metrics.top_cpu), ("top_memory", event.metrics.top_memory)):
            if len(top) > _MAX_TOP_PROCESSES:
                raise InvalidMessageError(
                    f"{where}: metrics.{field} has more than {_MAX_TOP_PROCESSES} entries"
                )
            for usage in top:
                _check_length(f"{where}: metrics.{field}[].name", usage.name, _MAX_NAME_CHARS)
                _check_length(f"{where}: metrics.{field}[].app_id", usage.app_id, _MAX_NAME_CHARS)
    elif kind == "frame":
        _validate_frame(where, event.frame, limits)
    elif kind == "text":
        _check_length(f"{where}: text.app_id", event.text.app_id, _MAX_NAME_CHARS)
        _check_length(f"{where}: text.source", event.text.source, _MAX_NAME_CHARS)
        _check_length(f"{where}: text.text", event.text.text, limits.max_text_chars)
    elif kind == "clipboard":
        _check_length(f"{where}: clipboard.app_id", event.clipboard.app_id, _MAX_NAME_CHARS)
        _check_length(f"{where}: clipboard.text", event.clipboard.text, limits.max_text_chars)
    elif kind == "url":
        if not event.url.url:
            raise InvalidMessageError(f"{where}: url.url is required")
        _check_length(f"{where}: url.app_id", event.url.app_id, _MAX_NAME_CHARS)
        _check_length(f"{where}: url.url", event.url.url, limits.max_url_chars)
        _check_length(f"{where}: url.title", event.url.title, limits.max_title_chars)
    elif kind == "command_started":
        _check_command_id(f"{where}: command_started.command_id", event.command_started.command_id)
    elif kind == "command_result":
        _validate_command_result(where, event.command_result, limits)
    elif kind == "recorded":
        _validate_recorded(where, event.recorded, limits)


def _check_command_id(name: str, command_id: str) -> None:
    if not _COMMAND_ID_RE.fullmatch(command_id):
        raise InvalidMessageError(
            f"{name} must be 1-128 characters of [A-Za-z0-9._-], got {command_id[:64]!r}"
        )


def _validate_command_result(where: str, result: pb.CommandResult, limits: IngestLimits) -> None:
    _check_command_id(f"{where}: command_result.command_id", result.command_id)
    if result.status not in _VALID_RESULT_STATUSES:
        raise InvalidMessageError(f"{where}: command_result.status must be set (SUCCEEDED, FAILED, ...)")
    if len(result.observed) > MAX_OBSERVED_ENTRIES:
        raise InvalidMessageError(
            f"{where}: command_result.observed has more than {MAX_OBSERVED_ENTRIES} entries"
        )
    for key in result.observed:
        _check_length(f"{where}: command_result.observed key", key, _MAX_NAME_CHARS)
    observed_chars = sum(len(value) for value in result.observed.values())
    if observed_chars > limits.max_text_chars:
        raise InvalidMessageError(
            f"{where}: command_result.observed holds {observed_chars} characters, "
            f"more than the limit of {limits.max_text_chars}"
        )
    _check_length(f"{where}: command_result.error", result.error, MAX_COMMAND_ERROR_CHARS)


def _validate_window_ref(name: str, window: pb.WindowRef, limits: IngestLimits) -> None:
    _check_length(f"{name}.app_id", window.app_id, _MAX_NAME_CHARS)
    _check_length(f"{name}.title_contains", window.title_contains, limits.max_title_chars)


def _validate_recorded(where: str, action: pb.RecordedAction, limits: IngestLimits) -> None:
    if not _COMMAND_ID_RE.fullmatch(action.recording_id):
        raise InvalidMessageError(
            f"{where}: recorded.recording_id must be 1-128 characters of [A-Za-z0-9._-], "
            f"got {action.recording_id[:64]!r}"
        )
    if action.kind not in _VALID_RECORDED_KINDS:
        raise InvalidMessageError(f"{where}: recorded.kind must be set (FOCUS, CLICK, FIELD_VALUE, ...)")
    _validate_window_ref(f"{where}: recorded.window", action.window, limits)
    _check_length(f"{where}: recorded.window_title", action.window_title, limits.max_title_chars)
    element = action.element
    _validate_window_ref(f"{where}: recorded.element.window", element.window, limits)
    _check_length(f"{where}: recorded.element.role", element.role, _MAX_ROLE_CHARS)
    _check_length(f"{where}: recorded.element.name", element.name, limits.max_title_chars)
    _check_length(f"{where}: recorded.element.label", element.label, limits.max_title_chars)
    _check_length(f"{where}: recorded.element.id_attribute", element.id_attribute, _MAX_NAME_CHARS)
    if len(element.path) > MAX_ELEMENT_PATH:
        raise InvalidMessageError(
            f"{where}: recorded.element.path has {len(element.path)} entries, more than {MAX_ELEMENT_PATH}"
        )
    _check_length(f"{where}: recorded.value", action.value, limits.max_text_chars)
    if action.secret and action.value:
        raise InvalidMessageError(f"{where}: recorded.value must be empty when secret is set")
    _check_length(f"{where}: recorded.keys", action.keys, _MAX_KEYS_CHARS)
    if action.waited_ms > MAX_WAITED_MS:
        raise InvalidMessageError(f"{where}: recorded.waited_ms is more than {MAX_WAITED_MS}")


def _validate_frame(where: str, frame: pb.ScreenFrame, limits: IngestLimits) -> None:
    if not frame.image:
        raise InvalidMessageError(f"{where}: frame.image is required")
    if len(frame.image) > limits.max_frame_bytes:
        raise InvalidMessageError(
            f"{where}: frame.image is {len(frame.image)} bytes, "
            f"more than max_frame_bytes={limits.max_frame_bytes}"
        )
    if frame.mime_type not in FRAME_EXTENSIONS:
        raise InvalidMessageError(f"{where}: frame.mime_type must be one of {sorted(FRAME_EXTENSIONS)}")
    for name, size in (("width", frame.width), ("height", frame.height)):
        if not 1 <= size <= limits.max_frame_dimension:
            raise InvalidMessageError(
                f"{where}: frame.{name} must be 1..{limits.max_frame_dimension}, got {size}"
            )
    if frame.stored_key:
        raise InvalidMessageError(f"{where}: frame.stored_key is set by the cloud, never by the agent")
    # Read from the image header: the declared size proves nothing, and a bomb must not be stored.
    try:
        inspect_frame(
            frame.image,
            frame.mime_type,
            max_pixels=limits.max_frame_pixels,
            declared=(frame.width, frame.height),
        )
    except InvalidMessageError as exc:
        raise InvalidMessageError(f"{where}: {exc}") from exc


def welcome(acked_seq: int, limits: IngestLimits) -> pb.CloudMessage:
    return pb.CloudMessage(
        welcome=pb.Welcome(
            acked_seq=acked_seq,
            max_batch_events=limits.max_batch_events,
            max_message_bytes=limits.max_message_bytes,
        )
    )


def ack(acked_seq: int) -> pb.CloudMessage:
    return pb.CloudMessage(ack=pb.Ack(acked_seq=acked_seq))
