"""The ``recording`` command: RecordingControl START/STOP on the one recording this desktop may have on.

* START with a new id while none is on: the recording starts (``Recording.start``: STARTED is in the
  spool when the command answers). START with the id that is on: nothing more happens (a repeated
  start). START while another recording is on: FAILED, naming it; the cloud stops it first.
* STOP with the id that is on: it stops (the last field is read, STOPPED is emitted) and the command
  observes how many actions it recorded. STOP with any other id: SUCCEEDED with ``was_recording:
  false`` (the recording may have stopped by itself at ``recording_max_s``).
* The agent stopping stops a recording that is on (STOPPED with ``value: agent_stop``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.config import ACTION_RECORDING, AgentSettings
from session_agent.errors import ActionFailedError, ActionRefusedError
from session_agent.executor.protocol import ActionContext, Handler, Outcome, valid_command_id
from session_agent.privacy import PrivacyRules
from session_agent.recorder.session import Recording

logger = logging.getLogger(__name__)

RC = pb.RecordingControl


class Recorder:
    """Holds the recording that is on, if any; its handler runs on the executor's action thread."""

    def __init__(
        self,
        settings: AgentSettings,
        privacy: PrivacyRules,
        emit: Callable[[pb.Event], None],
        *,
        session_bus: str | None = None,
    ) -> None:
        self._settings = settings
        self._privacy = privacy
        self._emit = emit
        self._bus = session_bus if session_bus is not None else os.environ.get("DBUS_SESSION_BUS_ADDRESS", "")
        self._lock = threading.Lock()
        self._recording: Recording | None = None

    @property
    def recording(self) -> Recording | None:
        """The recording that is on, or None."""
        with self._lock:
            recording = self._recording
        return recording if recording is not None and recording.running else None

    def handlers(self) -> dict[str, Handler]:
        return {ACTION_RECORDING: self.control}

    def control(self, command: pb.Command, context: ActionContext) -> Outcome:
        control = command.recording
        if not valid_command_id(control.recording_id):
            raise ActionRefusedError("recording_id must be 1-128 characters of [A-Za-z0-9._-]")
        if control.action == RC.ACTION_START:
            return self.start(control.recording_id)
        if control.action == RC.ACTION_STOP:
            return self.stop(control.recording_id)
        raise ActionRefusedError("RecordingControl.action must be ACTION_START or ACTION_STOP")

    def start(self, recording_id: str) -> Outcome:
        with self._lock:
            current = self._recording
            if current is not None and current.running:
                if current.recording_id == recording_id:
                    return Outcome({"recording_id": recording_id, "state": "recording", "already": "true"})
                raise ActionFailedError(f"recording {current.recording_id} is on; stop it first")
            settings = self._settings
            recording = Recording(
                recording_id,
                display=settings.display,
                session_bus=self._bus,
                privacy=self._privacy,
                emit=self._emit,
                max_s=settings.recording_max_s,
                wait_min_s=settings.recording_wait_min_s,
                clipboard_max_chars=settings.selection_max_chars,
            )
            recording.start()
            self._recording = recording
        logger.info("recording %s started", recording_id)
        return Outcome({"recording_id": recording_id, "state": "recording"})

    def stop(self, recording_id: str, reason: str = "command") -> Outcome:
        with self._lock:
            current = self._recording
            if current is None or current.recording_id != recording_id or not current.running:
                return Outcome({"recording_id": recording_id, "state": "stopped", "was_recording": "false"})
            self._recording = None
        current.stop(reason)
        return Outcome(
            {
                "recording_id": recording_id,
                "state": "stopped",
                "was_recording": "true",
                "actions": str(current.actions),
            }
        )

    def close(self) -> None:
        """Stop the recording that is on (the agent is stopping)."""
        with self._lock:
            current, self._recording = self._recording, None
        if current is not None and current.running:
            current.stop("agent_stop")
