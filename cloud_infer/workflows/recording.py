"""Recordings: what a user demonstrated on one desktop session, collected from the committed stream.

Each recording is one object in its owner's space, ``workflows/recordings/<recording_id>.json``, and a
session with a recording on has ``workflows/recording-sessions/<session_id>.json`` naming it. Both
are written by ``WorkflowService.start_recording`` before the agent is told to start, so everything
the agent records lands in an object that exists; a ``RecordedAction`` naming a recording the user
does not have, or one of another session, is ignored (an agent cannot write into another recording).

``RecordingCollector.on_committed`` is a consumer of the committed stream (its own durable cursor):
it appends each committed ``RecordedAction`` of the recording, and while the recording is on, the
session's frames (their stored keys: thumbnails) and accessible text (what appeared after the final
click: the claim number). It is idempotent (events at or below ``last_seq`` are skipped), bounded
(``MAX_ACTIONS``, ``MAX_FRAMES``, ``MAX_TEXTS``) and sees only what privacy redaction let through:
ingest redacts before it stores, so a paused user or a private window leaves nothing here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from google.protobuf import json_format
from pydantic import BaseModel, Field

from cloud_infer.errors import BackendUnavailableError, NotFoundError
from cloud_infer.workflows.compiler import FrameRef, Recorded, TextSeen
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.errors import InvalidNameError, ObjectNotFoundError, StoreError
from recall_store.event_log import frame_key
from recall_store.naming import validate_id, validate_key
from recall_store.store import ObjectStore

logger = logging.getLogger(__name__)

RECORDINGS_PREFIX = "workflows/recordings/"
SESSIONS_PREFIX = "workflows/recording-sessions/"
CONSUMER_NAME = "workflows"
MAX_ACTIONS = 2000
MAX_FRAMES = 500
MAX_TEXTS = 200
MAX_TEXT_CHARS = 8192
_MAX_CACHED_SESSIONS = 10_000
_JSON = "application/json"


class RecordingStatus(StrEnum):
    RECORDING = "recording"  # START issued; the agent records
    STOPPING = "stopping"  # STOP issued; compiling once the agent's last actions are in
    COMPILED = "compiled"  # saved as a macro
    FAILED = "failed"  # the agent refused, or nothing could be compiled


class StoredAction(BaseModel):
    seq: int
    time_ns: int
    action: dict[str, Any]  # the RecordedAction in protobuf JSON


class StoredFrame(BaseModel):
    time_ns: int
    key: str


class StoredText(BaseModel):
    time_ns: int
    app_id: str
    text: str


class Recording(BaseModel):
    recording_id: str
    session_id: str
    status: RecordingStatus = RecordingStatus.RECORDING
    created_ns: int
    start_command_id: str = ""
    stop_command_id: str = ""
    last_seq: int = 0
    stopped_seen: bool = False  # the agent's STOPPED marker is in
    truncated: bool = False  # more actions than MAX_ACTIONS: the rest were dropped
    actions: list[StoredAction] = Field(default_factory=list)
    frames: list[StoredFrame] = Field(default_factory=list)
    texts: list[StoredText] = Field(default_factory=list)
    macro_id: str = ""
    version: int = 0
    error: str = ""

    def recorded(self) -> list[Recorded]:
        return [
            Recorded(json_format.ParseDict(a.action, pb.RecordedAction()), a.time_ns, a.seq)
            for a in self.actions
        ]

    def frame_refs(self) -> list[FrameRef]:
        return [FrameRef(f.time_ns, f.key) for f in self.frames]

    def texts_seen(self) -> list[TextSeen]:
        return [TextSeen(t.time_ns, t.app_id, t.text) for t in self.texts]


def recording_key(recording_id: str) -> str:
    validate_id("recording id", recording_id)
    return validate_key(f"{RECORDINGS_PREFIX}{recording_id}.json")


def session_key(session_id: str) -> str:
    validate_id("session id", session_id)
    return validate_key(f"{SESSIONS_PREFIX}{session_id}.json")


class _Active(BaseModel):
    recording_id: str


class RecordingStore:
    """Recordings and each session's active one, in the owner's space; one lock per user."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._locks: dict[str, asyncio.Lock] = {}
        # (user, session) → the active recording id, or None: known to have none.
        self._active: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._stopped: dict[str, asyncio.Event] = {}

    def lock(self, user_id: str) -> asyncio.Lock:
        return self._locks.setdefault(user_id, asyncio.Lock())

    async def load(self, user_id: str, recording_id: str) -> Recording:
        try:
            data = await self._store.get(user_id, recording_key(recording_id))
        except (ObjectNotFoundError, InvalidNameError):
            raise NotFoundError(f"no recording {recording_id[:64]!r}") from None
        except StoreError as exc:
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc
        return Recording.model_validate_json(data)

    async def save(self, user_id: str, recording: Recording) -> None:
        data = recording.model_dump_json().encode()
        try:
            await self._store.put(user_id, recording_key(recording.recording_id), data, _JSON)
        except StoreError as exc:
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc
        if recording.stopped_seen and (waiting := self._stopped.get(recording.recording_id)) is not None:
            waiting.set()

    async def set_active(self, user_id: str, session_id: str, recording_id: str | None) -> None:
        try:
            if recording_id is None:
                await self._store.delete(user_id, [session_key(session_id)])
            else:
                data = _Active(recording_id=recording_id).model_dump_json().encode()
                await self._store.put(user_id, session_key(session_id), data, _JSON)
        except StoreError as exc:
            raise BackendUnavailableError(f"recall store unavailable: {exc}") from exc
        self._remember(user_id, session_id, recording_id)

    async def active(self, user_id: str, session_id: str) -> str | None:
        key = (user_id, session_id)
        if key in self._active:
            self._active.move_to_end(key)
            return self._active[key]
        try:
            found: str | None = _Active.model_validate_json(
                await self._store.get(user_id, session_key(session_id))
            ).recording_id
        except ObjectNotFoundError:
            found = None
        self._remember(user_id, session_id, found)
        return found

    def forget_user(self, user_id: str) -> None:
        """Drop what is cached of ``user_id`` (their space was erased)."""
        for key in [k for k in self._active if k[0] == user_id]:
            del self._active[key]

    async def wait_stopped(self, user_id: str, recording_id: str, timeout_s: float) -> bool:
        """Wait until the agent's STOPPED marker of the recording is collected; False on timeout."""
        event = self._stopped.setdefault(recording_id, asyncio.Event())
        try:
            if (await self.load(user_id, recording_id)).stopped_seen:
                return True
            async with asyncio.timeout(timeout_s):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self._stopped.pop(recording_id, None)

    def _remember(self, user_id: str, session_id: str, recording_id: str | None) -> None:
        self._active[(user_id, session_id)] = recording_id
        self._active.move_to_end((user_id, session_id))
        while len(self._active) > _MAX_CACHED_SESSIONS:
            self._active.popitem(last=False)


class RecordingCollector:
    """The committed-stream consumer that fills recordings (register with ``Fanout.register``)."""

    def __init__(self, recordings: RecordingStore) -> None:
        self._recordings = recordings

    async def on_committed(self, user_id: str, session_id: str, events: Sequence[pb.Event]) -> None:
        recorded = [e for e in events if e.WhichOneof("kind") == "recorded"]
        active = await self._recordings.active(user_id, session_id)
        if not recorded and active is None:
            return
        ids = {e.recorded.recording_id for e in recorded}
        if active is not None:
            ids.add(active)
        async with self._recordings.lock(user_id):
            for recording_id in sorted(ids):
                try:
                    recording = await self._recordings.load(user_id, recording_id)
                except NotFoundError:
                    logger.info("recorded actions of an unknown recording in session %s; ignored", session_id)
                    continue
                if recording.session_id != session_id:
                    logger.warning("recorded actions of another session's recording; ignored")
                    continue
                if _collect(recording, events, collecting=recording_id == active):
                    await self._recordings.save(user_id, recording)


def _collect(recording: Recording, events: Sequence[pb.Event], *, collecting: bool) -> bool:
    """Add what ``events`` hold for ``recording``; True when it changed."""
    changed = False
    for event in events:
        if event.seq <= recording.last_seq:
            continue
        kind = event.WhichOneof("kind")
        if kind == "recorded" and event.recorded.recording_id == recording.recording_id:
            if event.recorded.kind == pb.RecordedAction.KIND_STOPPED:
                recording.stopped_seen = True
            if len(recording.actions) < MAX_ACTIONS:
                action = json_format.MessageToDict(event.recorded, preserving_proto_field_name=True)
                recording.actions.append(
                    StoredAction(seq=event.seq, time_ns=event.time_unix_nano, action=action)
                )
            else:
                recording.truncated = True
        elif (
            collecting
            and not recording.stopped_seen
            and kind == "frame"
            and len(recording.frames) < MAX_FRAMES
        ):
            key = event.frame.stored_key or frame_key(recording.session_id, event.seq, event.frame.mime_type)
            recording.frames.append(StoredFrame(time_ns=event.time_unix_nano, key=key))
        elif collecting and not recording.stopped_seen and kind == "text" and event.text.text:
            recording.texts.append(
                StoredText(
                    time_ns=event.time_unix_nano,
                    app_id=event.text.app_id,
                    text=event.text.text[:MAX_TEXT_CHARS],
                )
            )
            del recording.texts[:-MAX_TEXTS]
        else:
            continue
        recording.last_seq = event.seq
        changed = True
    return changed
