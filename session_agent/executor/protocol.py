"""What the executor's parts share: the action context, the outcome of an action, and proto mapping.

An action handler is ``Handler(command, context) -> Outcome``: it returns what it observed when the
action was done, or raises ``ActionRefusedError``/``ActionFailedError`` (``session_agent.errors``). It
calls ``context.check()`` between its steps (and bounds every blocking call by ``context.remaining()``),
which raises ``CommandCancelledError`` once the command is cancelled or the agent stops, and
``ActionFailedError`` once the action's time is up.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.errors import ActionFailedError, CommandCancelledError

Status: TypeAlias = "pb.CommandResult.Status.ValueType"
NOTICE = "notice"
CANCEL = "cancel"
# Longest text value put into CommandResult.observed (an element's text, the clipboard).
MAX_OBSERVED_CHARS = 16_384
_REDACTED = "[secret]"
# The cloud refuses a batch holding any other id (cloud_infer/ingest/protocol.py): a result carrying one
# would block the agent's stream for good, so such a command is not even taken in.
_COMMAND_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class Outcome:
    """What an action observed once it was done."""

    observed: dict[str, str] = field(default_factory=dict)
    frame_seq: int = 0


@dataclass
class ActionContext:
    """One running command: its time budget, its stop signal and its secret (memory only)."""

    command_id: str
    deadline: float  # time.monotonic() by which the action must be done
    secret: str = field(default="", repr=False)
    stop: threading.Event = field(default_factory=threading.Event)
    # Why ``stop`` was set: "cancelled" (a CancelCommand) or "interrupted" (the agent is stopping).
    stop_reason: str = ""

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        """Raise when the command must not go on: stopped, or out of time."""
        if self.stop.is_set():
            raise CommandCancelledError(f"command {self.stop_reason or 'cancelled'} between two steps")
        if self.remaining() <= 0:
            raise ActionFailedError("the action ran out of time")

    def sleep(self, seconds: float) -> None:
        """Wait up to ``seconds`` (within the budget), then ``check()``."""
        self.stop.wait(max(0.0, min(seconds, self.remaining())))
        self.check()

    def halt(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()


Handler = Callable[[pb.Command, ActionContext], Outcome]


def action_of(command: pb.Command) -> str | None:
    """The action name of ``command`` (``type_text``, ``kill_process``, ``notice``, ``cancel``), or None
    when it carries no kind this agent knows (a newer cloud's)."""
    kind = command.WhichOneof("kind")
    if kind == "workflow_step":
        return command.workflow_step.WhichOneof("action")
    if kind == "remediation":
        return command.remediation.WhichOneof("action")
    return kind


def valid_command_id(command_id: str) -> bool:
    return _COMMAND_ID_RE.fullmatch(command_id) is not None


def describe(command: pb.Command) -> str:
    """A log line's view of ``command``: id, action and issuer; never its arguments or secret."""
    issuer = pb.Issuer.Kind.Name(command.issuer.kind).removeprefix("KIND_").lower()
    command_id = command.command_id if valid_command_id(command.command_id) else repr(command.command_id[:64])
    return f"{command_id} ({action_of(command) or 'unknown'} from {issuer}:{command.issuer.id[:128]})"


def cut(text: str, limit: int = MAX_OBSERVED_CHARS) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters, and whether it was cut."""
    return (text[:limit], True) if len(text) > limit else (text, False)


def started_event(command_id: str, now_ns: int) -> pb.Event:
    return pb.Event(time_unix_nano=now_ns, command_started=pb.CommandStarted(command_id=command_id))


def result_event(
    command_id: str,
    status: Status,
    *,
    received_ns: int,
    started_ns: int = 0,
    finished_ns: int,
    observed: dict[str, str] | None = None,
    error: str = "",
    frame_seq: int = 0,
    secret: str = "",
) -> pb.Event:
    """The CommandResult event; any occurrence of ``secret`` in ``observed`` or ``error`` is replaced,
    so that a message quoting what was typed can never carry it out."""
    observed = dict(observed or {})
    if secret:
        observed = {key: value.replace(secret, _REDACTED) for key, value in observed.items()}
        error = error.replace(secret, _REDACTED)
    return pb.Event(
        time_unix_nano=finished_ns,
        command_result=pb.CommandResult(
            command_id=command_id,
            status=status,
            received_unix_nano=received_ns,
            started_unix_nano=started_ns,
            finished_unix_nano=finished_ns,
            observed=observed,
            error=error[:1024],
            frame_seq=frame_seq,
        ),
    )
