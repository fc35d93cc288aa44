"""Governed remediation of an incident: a catalogue of actions, a dry run, approval for the risky ones,
a notice to each user, execution through the downlink, verification that the symptom cleared, and an
audit entry at every step.

An admin asks for an action on an incident (all its active sessions, or some of them). A dry run only
says what would happen, and to how many sessions. A risky action (ending or restarting a process, logging
a session off) waits for a second admin's approval; the others run at once. Each user is told in their
sidebar what is done to their desktop and why before the command is issued; the command goes as the
admin's, so the downlink's policy (admins send remediation types only) and the agent's allow-list both
apply. A command that
succeeded is verified: the incident's rule must stop holding for that session within ``verify_s``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from cloud_infer.commands.records import CommandStatus, Issuer
from cloud_infer.commands.service import CommandService
from cloud_infer.diagnostics.audit import AuditLog
from cloud_infer.diagnostics.incidents import Incident
from cloud_infer.diagnostics.service import DiagnosticsService
from cloud_infer.errors import InvalidMessageError, NotFoundError, PermissionDeniedError
from protos.shadowdesk.v1 import ingest_pb2 as pb

_VERIFY_POLL_S = 1.0
SYSTEM = Issuer.system("diagnostics")


class Remedy(StrEnum):
    FREE_TEMP_SPACE = "free_temp_space"
    DIAGNOSTIC_SNAPSHOT = "diagnostic_snapshot"
    END_PROCESS = "end_process"
    RESTART_APP = "restart_app"
    LOG_OFF = "log_off"


# Actions on one named process (one session); these and logging off wait for a second admin.
PROCESS_ACTIONS = frozenset({Remedy.END_PROCESS, Remedy.RESTART_APP})
RISKY = PROCESS_ACTIONS | {Remedy.LOG_OFF}


class RemediationRequest(BaseModel):
    action: Remedy
    sessions: list[str] | None = Field(
        default=None, description="Pseudonyms of the incident's sessions; default: every active one."
    )
    pid: int | None = Field(
        default=None, ge=1, description="end_process/restart_app: the process (one session)."
    )
    executable: str = Field(default="", max_length=256, description="The name the process must have.")
    older_than_s: int = Field(default=3600, ge=0, le=30 * 86400, description="free_temp_space: file age.")
    grace_s: int = Field(
        default=30, ge=1, le=600, description="log_off: how long apps get to close (and save) by themselves."
    )
    dry_run: bool = False

    @model_validator(mode="after")
    def _process_named(self) -> RemediationRequest:
        if self.action in PROCESS_ACTIONS and (self.pid is None or not self.executable):
            raise ValueError(f"{self.action} needs the pid and the executable name of the process")
        return self

    def describe(self) -> str:
        return {
            Remedy.FREE_TEMP_SPACE: f"remove temporary files untouched for {self.older_than_s} s",
            Remedy.DIAGNOSTIC_SNAPSHOT: "take a diagnostic snapshot",
            Remedy.END_PROCESS: f"end {self.executable} (pid {self.pid})",
            Remedy.RESTART_APP: f"restart {self.executable} (pid {self.pid})",
            Remedy.LOG_OFF: f"log the session off (apps get {self.grace_s} s to close)",
        }[self.action]

    def command(self) -> pb.Remediation:
        match self.action:
            case Remedy.FREE_TEMP_SPACE:
                return pb.Remediation(free_temp_space=pb.FreeTempSpace(older_than_s=self.older_than_s))
            case Remedy.DIAGNOSTIC_SNAPSHOT:
                return pb.Remediation(diagnostic_snapshot=pb.DiagnosticSnapshot())
            case Remedy.END_PROCESS:
                kill = pb.KillProcess(pid=self.pid or 0, expect_executable=self.executable)
                return pb.Remediation(kill_process=kill)
            case Remedy.RESTART_APP:
                restart = pb.RestartProcess(pid=self.pid or 0, expect_executable=self.executable)
                return pb.Remediation(restart_process=restart)
            case Remedy.LOG_OFF:
                return pb.Remediation(log_off=pb.LogOff(grace_s=self.grace_s))


class RemediationStatus(StrEnum):
    DRY_RUN = "dry_run"
    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    DONE = "done"


class SessionOutcome(BaseModel):
    subject: str
    reachable: bool = Field(description="Whether this server knows the session (it reported metrics).")
    command_id: str | None = None
    status: str = ""
    error: str = ""
    cleared: bool | None = Field(default=None, description="The symptom stopped after the command.")


class Remediation(BaseModel):
    remediation_id: str
    incident_id: str
    action: Remedy
    what: str
    status: RemediationStatus
    requested_by: str
    approved_by: str | None = None
    created_ns: int
    finished_ns: int | None = None
    sessions: list[SessionOutcome]


class RemediationService:
    def __init__(self, diagnostics: DiagnosticsService, commands: CommandService, audit: AuditLog) -> None:
        self._diagnostics = diagnostics
        self._commands = commands
        self.audit = audit
        self._remediations: dict[str, Remediation] = {}
        self._requests: dict[str, RemediationRequest] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def request(self, admin: str, incident_id: str, request: RemediationRequest) -> Remediation:
        """Plan ``request`` on the incident: a dry run, a risky action awaiting approval, or started."""
        incident = self._diagnostics.incident(incident_id)
        subjects = self._subjects(incident, request)
        remediation = Remediation(
            remediation_id=f"rem-{uuid.uuid4().hex[:12]}",
            incident_id=incident_id,
            action=request.action,
            what=f"{request.describe()} on {len(subjects)} session{'s' * (len(subjects) != 1)}",
            status=RemediationStatus.DRY_RUN,
            requested_by=admin,
            created_ns=time.time_ns(),
            sessions=[
                SessionOutcome(subject=s, reachable=self._diagnostics.session_of(s) is not None)
                for s in subjects
            ],
        )
        if request.dry_run:
            return remediation
        self._remediations[remediation.remediation_id] = remediation
        self._requests[remediation.remediation_id] = request
        await self._audit(remediation, admin, "requested", incident)
        if request.action in RISKY:
            remediation.status = RemediationStatus.AWAITING_APPROVAL
        else:
            self._start(remediation, incident)
        return remediation

    async def approve(self, admin: str, remediation_id: str) -> Remediation:
        remediation = self.get(remediation_id)
        if remediation.status is not RemediationStatus.AWAITING_APPROVAL:
            raise InvalidMessageError(
                f"remediation {remediation_id} is {remediation.status}: nothing to approve"
            )
        if admin == remediation.requested_by:
            raise PermissionDeniedError("a risky remediation is approved by another admin than its requester")
        remediation.approved_by = admin
        incident = self._diagnostics.incident(remediation.incident_id)
        await self._audit(remediation, admin, "approved", incident)
        self._start(remediation, incident)
        return remediation

    def get(self, remediation_id: str) -> Remediation:
        found = self._remediations.get(remediation_id)
        if found is None:
            raise NotFoundError(f"no remediation {remediation_id!r}")
        return found

    def of_incident(self, incident_id: str) -> list[Remediation]:
        """The incident's remediations (not dry runs) since this server started, newest first."""
        found = [r for r in self._remediations.values() if r.incident_id == incident_id]
        return sorted(found, key=lambda r: r.created_ns, reverse=True)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _subjects(self, incident: Incident, request: RemediationRequest) -> list[str]:
        active = [s.subject for s in incident.sessions if s.active]
        if request.sessions is None:
            subjects = active
        else:
            unknown = set(request.sessions) - {s.subject for s in incident.sessions}
            if unknown:
                raise InvalidMessageError(f"not sessions of this incident: {sorted(unknown)}")
            subjects = list(dict.fromkeys(request.sessions))
        if not subjects:
            raise InvalidMessageError("the incident has no active session to act on")
        if request.action in PROCESS_ACTIONS and len(subjects) != 1:
            raise InvalidMessageError(f"{request.action} names one process, so it acts on one session")
        return subjects

    def _start(self, remediation: Remediation, incident: Incident) -> None:
        remediation.status = RemediationStatus.RUNNING
        task = asyncio.create_task(
            self._run(remediation, incident), name=f"remediation-{remediation.remediation_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, remediation: Remediation, incident: Incident) -> None:
        request = self._requests[remediation.remediation_id]
        issuer = Issuer.admin(remediation.requested_by)
        settings = self._diagnostics.settings
        try:
            await asyncio.gather(
                *(
                    self._one(
                        outcome, request, issuer, incident, settings.remediation_deadline_s, settings.verify_s
                    )
                    for outcome in remediation.sessions
                )
            )
        finally:
            remediation.status = RemediationStatus.DONE
            remediation.finished_ns = time.time_ns()
            await self._audit(remediation, remediation.requested_by, "finished", incident)

    async def _one(
        self,
        outcome: SessionOutcome,
        request: RemediationRequest,
        issuer: Issuer,
        incident: Incident,
        deadline_s: float,
        verify_s: float,
    ) -> None:
        session = self._diagnostics.session_of(outcome.subject)
        if session is None:
            outcome.status, outcome.error = "skipped", "this server does not know the session"
            return
        try:
            # The user hears of it first, in their sidebar (the notice goes down the same stream).
            notice = pb.Notice(
                title=f"Your administrator will {request.describe()}",
                body=f"{incident.title}: {incident.explanation}",
            )
            await self._commands.issue(session, notice, issuer=SYSTEM, deadline_s=deadline_s)
            record = await self._commands.issue(
                session, request.command(), issuer=issuer, deadline_s=deadline_s
            )
            outcome.command_id = record.command_id
            done = await self._commands.wait(session, record.command_id, deadline_s + 5, issuer=issuer)
        except (TimeoutError, InvalidMessageError, NotFoundError, PermissionDeniedError) as exc:
            outcome.status, outcome.error = "failed", str(exc)
            return
        outcome.status, outcome.error = done.status.value, done.error
        if done.status is not CommandStatus.SUCCEEDED:
            return
        give_up = time.monotonic() + verify_s
        while self._still_holds(outcome.subject, incident) and time.monotonic() < give_up:
            await asyncio.sleep(_VERIFY_POLL_S)
        outcome.cleared = not self._still_holds(outcome.subject, incident)

    def _still_holds(self, subject: str, incident: Incident) -> bool:
        # By signature: one app's hang must not look cleared, or not, because of another app's.
        if incident.signature:
            return self._diagnostics.holds_fault(subject, incident.signature)
        return self._diagnostics.holds(subject, incident.rule)  # an incident stored before signatures

    async def _audit(self, remediation: Remediation, actor: str, step: str, incident: Incident) -> None:
        await self.audit.append(
            actor,
            f"remediation.{remediation.action}.{step}",
            f"incident {incident.incident_id}: {incident.title}",
            subjects=[s.subject for s in remediation.sessions],
            evidence={"rule": incident.rule.value, "explanation": incident.explanation},
            result={
                "remediation_id": remediation.remediation_id,
                "what": remediation.what,
                "sessions": [s.model_dump(exclude={"reachable"}) for s in remediation.sessions],
            },
        )
