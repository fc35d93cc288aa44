"""What the cloud knows about a command: its record in the session's outbox, and who issued it.

A record holds the command as sent (``command``, the ``shadowdesk.v1.Command`` in protobuf's JSON form)
**without** its run-time secret, which lives only in the server's memory (``CommandService``), and
the outcome the agent reported (or the cloud decided, for a command the agent never started).

Status: ``queued`` (not yet written to a stream) → ``delivered`` (written to at least one stream) →
``running`` (the agent's ``CommandStarted`` is committed) → one final status. Final statuses mirror
``CommandResult.Status``; the cloud itself records ``expired`` (never delivered before its deadline, or
delivered but no result long after it), ``cancelled`` (cancelled while still queued) and ``failed``
(its run-time secret was lost in a server restart before it was delivered).
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any, Literal

from google.protobuf import json_format
from pydantic import BaseModel, ConfigDict, Field

from protos.shadowdesk.v1 import ingest_pb2 as pb

CommandKind = Literal["notice", "workflow_step", "remediation", "cancel", "recording"]
# The message of each kind a caller issues (a cancel is made by CommandService.cancel).
Action = pb.Notice | pb.WorkflowStep | pb.Remediation | pb.RecordingControl


class CommandStatus(StrEnum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def pending(self) -> bool:
        return self in _PENDING


_PENDING = frozenset({CommandStatus.QUEUED, CommandStatus.DELIVERED, CommandStatus.RUNNING})

RESULT_STATUS: dict[int, CommandStatus] = {
    pb.CommandResult.STATUS_SUCCEEDED: CommandStatus.SUCCEEDED,
    pb.CommandResult.STATUS_FAILED: CommandStatus.FAILED,
    pb.CommandResult.STATUS_REFUSED: CommandStatus.REFUSED,
    pb.CommandResult.STATUS_EXPIRED: CommandStatus.EXPIRED,
    pb.CommandResult.STATUS_CANCELLED: CommandStatus.CANCELLED,
    pb.CommandResult.STATUS_INTERRUPTED: CommandStatus.INTERRUPTED,
}


class IssuerKind(StrEnum):
    USER = "user"
    ADMIN = "admin"
    SYSTEM = "system"


_ISSUER_PB = {
    IssuerKind.USER: pb.Issuer.KIND_USER,
    IssuerKind.ADMIN: pb.Issuer.KIND_ADMIN,
    IssuerKind.SYSTEM: pb.Issuer.KIND_SYSTEM,
}


class Issuer(BaseModel):
    """Who issues a command: a user (their own sessions), an admin (remediation) or a system component."""

    model_config = ConfigDict(frozen=True)

    kind: IssuerKind
    id: str = Field(min_length=1, max_length=128)

    @classmethod
    def user(cls, user_id: str) -> Issuer:
        return cls(kind=IssuerKind.USER, id=user_id)

    @classmethod
    def admin(cls, admin_id: str) -> Issuer:
        return cls(kind=IssuerKind.ADMIN, id=admin_id)

    @classmethod
    def system(cls, component: str) -> Issuer:
        """An internal caller of the Python API (a workflow runner, diagnostics); never an HTTP caller."""
        return cls(kind=IssuerKind.SYSTEM, id=component)

    def to_pb(self) -> pb.Issuer:
        return pb.Issuer(kind=_ISSUER_PB[self.kind], id=self.id)


def new_command_id() -> str:
    return uuid.uuid4().hex


def kind_of(action: Action) -> CommandKind:
    if isinstance(action, pb.Notice):
        return "notice"
    if isinstance(action, pb.WorkflowStep):
        return "workflow_step"
    if isinstance(action, pb.Remediation):
        return "remediation"
    if isinstance(action, pb.RecordingControl):
        return "recording"
    raise TypeError(f"not a command action: {type(action).__name__}")


def action_name(command: pb.Command) -> str:
    """``workflow_step.type_text``, ``remediation.kill_process``, ``recording.start``, ``notice``..."""
    kind = command.WhichOneof("kind") or ""
    if kind == "recording":
        action = pb.RecordingControl.Action.Name(command.recording.action)
        return f"{kind}.{action.removeprefix('ACTION_').lower()}"
    if kind == "workflow_step":
        return f"{kind}.{command.workflow_step.WhichOneof('action')}"
    if kind == "remediation":
        return f"{kind}.{command.remediation.WhichOneof('action')}"
    return kind


class CommandRecord(BaseModel):
    """One command of a session's outbox, as stored (never with its secret)."""

    command_id: str
    user_id: str
    session_id: str
    issuer: Issuer
    kind: CommandKind
    action: str
    # The Command in protobuf JSON form, secret cleared.
    command: dict[str, Any]
    needs_secret: bool = False
    idempotency_key: str = ""
    issued_ns: int
    deadline_ns: int
    status: CommandStatus = CommandStatus.QUEUED
    deliveries: int = 0
    delivered_ns: int = 0
    # From the agent's CommandStarted / CommandResult (nanoseconds since the epoch, desktop clock).
    received_ns: int = 0
    started_ns: int = 0
    finished_ns: int = 0
    observed: dict[str, str] = Field(default_factory=dict)
    error: str = ""
    frame_seq: int = 0
    # Who decided the final status: the agent's CommandResult is the last word, even after the cloud's.
    decided_by: Literal["agent", "cloud"] | None = None
    # A cancel command names its target; a target knows a cancel was sent for it.
    cancels: str = ""
    cancel_requested: bool = False

    @property
    def pending(self) -> bool:
        return self.status.pending

    def to_pb(self, secret: str | None) -> pb.Command:
        """The Command to send, with the run-time secret when the server still holds it."""
        command = json_format.ParseDict(self.command, pb.Command())
        if secret is not None:
            command.secret = secret
        return command


def command_json(command: pb.Command) -> dict[str, Any]:
    """``command`` in protobuf's JSON form, for the outbox: the secret never goes in."""
    stored = pb.Command()
    stored.CopyFrom(command)
    stored.ClearField("secret")
    return json_format.MessageToDict(stored, preserving_proto_field_name=True)
