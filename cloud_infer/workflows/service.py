"""Workflows without transport: record a demonstration, compile it, keep the user's macros.

``start_recording`` creates the recording (``recording.py``) and marks it the session's active one,
then issues ``RecordingControl`` START through the downlink as the user (``CommandService``: the policy
there lets a user record only their own sessions; an admin never). The agent's ``RecordedAction``
events come back through the committed stream to ``RecordingCollector``. ``stop_recording`` issues
STOP, waits for the agent's result and for its STOPPED marker to be collected (each bounded), compiles
what was recorded (``compiler.py``, no model calls) and saves it as a new macro (``macros.py``).
Stopping again returns the macro already made.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass

from cloud_infer.commands import policy
from cloud_infer.commands.records import CommandStatus, Issuer
from cloud_infer.commands.service import CommandService, SessionRef
from cloud_infer.errors import InvalidMessageError
from cloud_infer.stream.fanout import Fanout
from cloud_infer.workflows.compiler import compile_recording
from cloud_infer.workflows.macros import Macro, MacroStore
from cloud_infer.workflows.recording import (
    CONSUMER_NAME,
    Recording,
    RecordingCollector,
    RecordingStatus,
    RecordingStore,
)
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.store import ObjectStore

START_DEADLINE_S = 120.0  # an agent offline longer than this does not start recording later
STOP_RESULT_WAIT_S = 15.0
STOPPED_MARKER_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class Stopped:
    recording: Recording
    macro: Macro


class WorkflowService:
    def __init__(self, store: ObjectStore, commands: CommandService) -> None:
        self.commands = commands
        self.recordings = RecordingStore(store)
        self.macros = MacroStore(store)
        self.collector = RecordingCollector(self.recordings)

    def consume(self, stream: Fanout) -> None:
        """Collect recorded actions from ``stream`` (register before it starts)."""
        stream.register(CONSUMER_NAME, self.collector.on_committed)

    async def start_recording(self, issuer: Issuer, user_id: str, session_id: str) -> Recording:
        """Start recording on the user's session. NotFoundError (no such session), PermissionDeniedError."""
        session = SessionRef(user_id, session_id)
        recording = Recording(recording_id=uuid.uuid4().hex, session_id=session_id, created_ns=time.time_ns())
        # Who may record, and that the session is the user's, before anything is written.
        policy.check_issue(issuer, user_id, "recording")
        async with self.commands.outbox.editing(user_id, session_id):
            pass  # NotFoundError: no session of this user has connected
        async with self.recordings.lock(user_id):
            previous = await self.recordings.active(user_id, session_id)
            await self.recordings.save(user_id, recording)
            await self.recordings.set_active(user_id, session_id, recording.recording_id)
        control = pb.RecordingControl(
            recording_id=recording.recording_id, action=pb.RecordingControl.ACTION_START
        )
        try:
            command = await self.commands.issue(
                session,
                control,
                issuer=issuer,
                deadline_s=START_DEADLINE_S,
                idempotency_key=f"record-start-{recording.recording_id}",
            )
        except BaseException:
            async with self.recordings.lock(user_id):
                await self.recordings.set_active(user_id, session_id, previous)
                recording.status = RecordingStatus.FAILED
                recording.error = "the start command could not be issued"
                await self.recordings.save(user_id, recording)
            raise
        async with self.recordings.lock(user_id):
            stored = await self.recordings.load(user_id, recording.recording_id)
            stored.start_command_id = command.command_id
            await self.recordings.save(user_id, stored)
        return stored

    async def get_recording(self, issuer: Issuer, user_id: str, recording_id: str) -> Recording:
        """The recording, with its status brought up to date from its start command."""
        recording = await self.recordings.load(user_id, recording_id)
        if recording.status is RecordingStatus.RECORDING and recording.start_command_id:
            session = SessionRef(user_id, recording.session_id)
            command = await self.commands.get(session, recording.start_command_id, issuer=issuer)
            if not command.pending and command.status is not CommandStatus.SUCCEEDED:
                async with self.recordings.lock(user_id):
                    recording = await self.recordings.load(user_id, recording_id)
                    recording.status = RecordingStatus.FAILED
                    recording.error = f"the agent did not start recording: {command.status}: {command.error}"[
                        :500
                    ]
                    await self.recordings.save(user_id, recording)
                    if await self.recordings.active(user_id, recording.session_id) == recording_id:
                        await self.recordings.set_active(user_id, recording.session_id, None)
        return recording

    async def stop_recording(
        self, issuer: Issuer, user_id: str, recording_id: str, name: str = ""
    ) -> Stopped:
        """Stop, compile and save as a macro; the same macro again for a recording already stopped.

        InvalidMessageError when the recording failed or holds nothing to replay.
        """
        recording = await self.get_recording(issuer, user_id, recording_id)
        if recording.status is RecordingStatus.COMPILED:
            return Stopped(recording, await self.macros.get(user_id, recording.macro_id, recording.version))
        if recording.status is RecordingStatus.FAILED:
            raise InvalidMessageError(f"the recording failed: {recording.error}")
        session = SessionRef(user_id, recording.session_id)
        control = pb.RecordingControl(recording_id=recording_id, action=pb.RecordingControl.ACTION_STOP)
        command = await self.commands.issue(
            session,
            control,
            issuer=issuer,
            deadline_s=START_DEADLINE_S,
            idempotency_key=f"record-stop-{recording_id}",
        )
        async with self.recordings.lock(user_id):
            recording = await self.recordings.load(user_id, recording_id)
            recording.status = RecordingStatus.STOPPING
            recording.stop_command_id = command.command_id
            await self.recordings.save(user_id, recording)
        # Without a result in time the agent is away: compile what reached us (it stops when the
        # command gets there); with one, its last actions and STOPPED marker are committed just before.
        with contextlib.suppress(TimeoutError):
            await self.commands.wait(session, command.command_id, STOP_RESULT_WAIT_S, issuer=issuer)
            await self.recordings.wait_stopped(user_id, recording_id, STOPPED_MARKER_WAIT_S)
        async with self.recordings.lock(user_id):
            recording = await self.recordings.load(user_id, recording_id)
            if recording.status is RecordingStatus.COMPILED:  # a concurrent stop got here first
                return Stopped(
                    recording, await self.macros.get(user_id, recording.macro_id, recording.version)
                )
            if await self.recordings.active(user_id, recording.session_id) == recording_id:
                await self.recordings.set_active(user_id, recording.session_id, None)
            try:
                program = compile_recording(
                    recording.recorded(),
                    name=name
                    or f"Recorded {time.strftime('%Y-%m-%d %H:%M', time.gmtime(recording.created_ns / 1e9))}",
                    frames=recording.frame_refs(),
                    texts=recording.texts_seen(),
                )
            except ValueError as exc:
                recording.status = RecordingStatus.FAILED
                recording.error = str(exc)
                await self.recordings.save(user_id, recording)
                raise InvalidMessageError(f"nothing to save: {exc}") from None
            macro = await self.macros.save_program(user_id, program, recording_id=recording_id)
            recording.status = RecordingStatus.COMPILED
            recording.macro_id, recording.version = macro.macro_id, macro.version
            recording.texts = []  # screen text was only needed to find the final check
            await self.recordings.save(user_id, recording)
        return Stopped(recording, macro)
