"""The commands API's JSON shapes, their mapping to ``shadowdesk.v1`` messages, and the checks on both.

A request names its command in protobuf's JSON form under exactly one of ``notice``,
``workflow_step`` or ``remediation`` (e.g. ``{"workflow_step": {"type_text": {"element": {...},
"text": "hi"}}}``): the contract stays the one definition of what an agent can be asked to do.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from cloud_infer.commands.records import Action, CommandKind, CommandRecord, CommandStatus, IssuerKind
from cloud_infer.errors import InvalidMessageError
from protos.shadowdesk.v1 import ingest_pb2 as pb

MAX_ACTION_BYTES = 16 * 1024
MAX_SECRET_CHARS = 4096
MAX_IDEMPOTENCY_KEY_CHARS = 128
_IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces
RECORDING_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_NS_PER_S = 1_000_000_000
_ACTION_TYPES: dict[str, type[Action]] = {
    "notice": pb.Notice,
    "workflow_step": pb.WorkflowStep,
    "remediation": pb.Remediation,
}


class CommandRequest(BaseModel):
    """``POST /v1/sessions/{session_id}/commands``: exactly one of notice, workflow_step, remediation."""

    model_config = ConfigDict(extra="forbid")

    notice: dict[str, Any] | None = Field(
        default=None,
        description='A shadowdesk.v1.Notice in protobuf JSON, e.g. {"title": "Backup", "body": "done"}.',
    )
    workflow_step: dict[str, Any] | None = Field(
        default=None,
        description='A shadowdesk.v1.WorkflowStep in protobuf JSON, e.g. {"press_keys": {"keys": "ctrl+s"}}.',
    )
    remediation: dict[str, Any] | None = Field(
        default=None,
        description="A shadowdesk.v1.Remediation in protobuf JSON, "
        'e.g. {"free_temp_space": {"older_than_s": 86400}}.',
    )
    deadline_s: float | None = Field(
        default=None, gt=0, description="Seconds from now after which the agent must not start it."
    )
    idempotency_key: str = Field(
        default="",
        max_length=MAX_IDEMPOTENCY_KEY_CHARS,
        description="Issuing again with the same key on this session returns the first command.",
    )
    secret: SecretStr | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SECRET_CHARS,
        description="A run-time secret for type_text with use_secret: kept in memory only, never stored.",
    )


def action_of(request: CommandRequest) -> Action:
    """The one action the request names, parsed strictly (unknown fields are refused)."""
    named = [(kind, value) for kind in _ACTION_TYPES if (value := getattr(request, kind)) is not None]
    if len(named) != 1:
        raise InvalidMessageError("name exactly one of notice, workflow_step, remediation")
    kind, value = named[0]
    try:
        return json_format.ParseDict(value, _ACTION_TYPES[kind]())
    except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise InvalidMessageError(f"{kind}: {str(exc)[:300]}") from None


def check_action(action: Action, secret: str | None) -> None:
    """What the cloud requires of any action (the agent checks the rest on the desktop)."""
    if isinstance(action, pb.WorkflowStep | pb.Remediation) and action.WhichOneof("action") is None:
        kind = "workflow_step" if isinstance(action, pb.WorkflowStep) else "remediation"
        choices = ", ".join(f.name for f in action.DESCRIPTOR.oneofs_by_name["action"].fields)
        raise InvalidMessageError(f"{kind} needs one action: {choices}")
    if isinstance(action, pb.RecordingControl):
        if action.action not in (pb.RecordingControl.ACTION_START, pb.RecordingControl.ACTION_STOP):
            raise InvalidMessageError("recording needs action ACTION_START or ACTION_STOP")
        if not RECORDING_ID_RE.fullmatch(action.recording_id):
            raise InvalidMessageError("recording_id is 1..128 characters of [A-Za-z0-9._-]")
    size = action.ByteSize()
    if size > MAX_ACTION_BYTES:
        raise InvalidMessageError(f"the command is {size} bytes, more than {MAX_ACTION_BYTES}")
    if secret is not None and not 0 < len(secret) <= MAX_SECRET_CHARS:
        raise InvalidMessageError(f"a secret is 1..{MAX_SECRET_CHARS} characters")
    uses_secret = isinstance(action, pb.WorkflowStep) and action.type_text.use_secret
    if uses_secret and secret is None:
        raise InvalidMessageError("type_text with use_secret needs the secret with the command")


def check_request_fields(deadline_s: float, max_deadline_s: float, idempotency_key: str) -> None:
    if not 0 < deadline_s <= max_deadline_s:
        raise InvalidMessageError(f"deadline_s must be in (0, {max_deadline_s:g}]")
    if idempotency_key and not _IDEMPOTENCY_KEY_RE.fullmatch(idempotency_key):
        raise InvalidMessageError(
            f"idempotency_key is 1..{MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters without spaces"
        )


class IssuerView(BaseModel):
    kind: IssuerKind
    id: str


class CommandView(BaseModel):
    """A command as the API shows it: what it is, where it stands, and what the agent reported."""

    command_id: str
    session_id: str
    kind: CommandKind
    action: str = Field(description="e.g. workflow_step.type_text, remediation.kill_process, notice, cancel")
    status: CommandStatus
    issuer: IssuerView
    idempotency_key: str
    issued_at: datetime
    deadline: datetime
    deliveries: int = Field(description="Times it was written to an agent stream.")
    delivered_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    observed: dict[str, str] = Field(description="What the agent observed after the action.")
    error: str
    frame_seq: int = Field(description="seq of the frame a take_frame produced (0: none).")
    decided_by: str | None = Field(description="agent, or cloud for a command the agent never started.")
    cancels: str | None = Field(description="The command a cancel command cancels.")
    cancel_requested: bool


class SessionView(BaseModel):
    session_id: str
    connected: bool = Field(description="An agent of the session has a stream open on this server now.")


class SessionList(BaseModel):
    sessions: list[SessionView]


def _time(ns: int) -> datetime | None:
    return datetime.fromtimestamp(ns / _NS_PER_S, UTC) if ns else None


def view_of(record: CommandRecord) -> CommandView:
    return CommandView(
        command_id=record.command_id,
        session_id=record.session_id,
        kind=record.kind,
        action=record.action,
        status=record.status,
        issuer=IssuerView(kind=record.issuer.kind, id=record.issuer.id),
        idempotency_key=record.idempotency_key,
        issued_at=datetime.fromtimestamp(record.issued_ns / _NS_PER_S, UTC),
        deadline=datetime.fromtimestamp(record.deadline_ns / _NS_PER_S, UTC),
        deliveries=record.deliveries,
        delivered_at=_time(record.delivered_ns),
        started_at=_time(record.started_ns),
        finished_at=_time(record.finished_ns),
        observed=record.observed,
        error=record.error,
        frame_seq=record.frame_seq,
        decided_by=record.decided_by,
        cancels=record.cancels or None,
        cancel_requested=record.cancel_requested,
    )
