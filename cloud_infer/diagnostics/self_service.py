"""The user's side of ops (端云协同): what is wrong with my desktop, and the fix I can apply myself.

A user sees the open incidents of their own sessions, in plain words, with the fixes that fit the fault
and that a person may apply to their own desktop: close the app process that holds the memory or the
CPU, end a frozen app, remove old temporary files. A fix is one of those offered, chosen by its id, so a
user never names an arbitrary process; processes that belong to no desktop app (the X server, daemons)
are never offered. The fix goes down the downlink as the user, to their own session only
(``commands/policy.py``), and the audit log records it under the session's pseudonym, as every ops entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from cloud_infer.commands import CommandService
from cloud_infer.commands.records import Issuer
from cloud_infer.diagnostics.audit import AuditLog
from cloud_infer.diagnostics.incidents import AffectedSession, Incident, TopProcess
from cloud_infer.diagnostics.remediation import RemediationRequest, Remedy
from cloud_infer.diagnostics.rules import Rule, Severity
from cloud_infer.diagnostics.service import DiagnosticsService
from cloud_infer.diagnostics.signals import Consumer, Series
from cloud_infer.errors import NotFoundError

_MEMORY_RULES = frozenset({Rule.MEMORY_PRESSURE, Rule.MEMORY_UNUSUAL, Rule.SWAP_THRASH})
_CPU_RULES = frozenset({Rule.CPU_SATURATED, Rule.CPU_UNUSUAL, Rule.DESKTOP_UNRESPONSIVE})


class SelfFix(BaseModel):
    fix_id: str
    action: Remedy
    label: str = Field(description="What the fix does, in the words the sidebar shows.")
    pid: int | None = None
    executable: str = ""


class HealthNotice(BaseModel):
    incident_id: str
    severity: Severity
    title: str
    message: str = Field(description="What holds on this desktop, and the likely causes.")
    opened_ns: int
    fixes: list[SelfFix]


class SelfFixResult(BaseModel):
    command_id: str
    status: str
    error: str = ""


def _top(processes: Sequence[TopProcess | Consumer], key: str) -> TopProcess | Consumer | None:
    """The biggest consumer that belongs to a desktop app."""
    mine = [p for p in processes if p.app_id and p.pid > 1]
    return max(mine, key=lambda p: float(getattr(p, key)), default=None)


def _newest_top(series: Series | None) -> list[Consumer]:
    """The top processes of the session's newest sample that has them (they are sampled every few s)."""
    for sample in series.newest_first() if series is not None else ():
        if sample.top_cpu or sample.top_memory:
            return [*sample.top_cpu, *sample.top_memory]
    return []


def fixes_for(incident: Incident, part: AffectedSession, series: Series | None = None) -> list[SelfFix]:
    """The fixes a user may apply to their own session for this incident."""
    if incident.rule is Rule.DISK_FULL:
        return [
            SelfFix(
                fix_id="f1", action=Remedy.FREE_TEMP_SPACE, label="Remove temporary files older than an hour"
            )
        ]
    if incident.rule is Rule.APP_HANG and part.pid > 1 and part.executable:
        label = f"End the frozen {part.executable} (pid {part.pid}); unsaved work in it is lost"
        return [
            SelfFix(
                fix_id="f1", action=Remedy.END_PROCESS, label=label, pid=part.pid, executable=part.executable
            )
        ]
    # The incident keeps them once a sample after its opening had them; until then, the session's own.
    processes: list[TopProcess | Consumer] = [p for p in incident.top_processes if p.subject == part.subject]
    processes = processes or list(_newest_top(series))
    if incident.rule in _MEMORY_RULES:
        top, what = _top(processes, "memory_percent"), "memory"
    elif incident.rule in _CPU_RULES:
        top, what = _top(processes, "cpu_percent"), "CPU"
    else:
        return []
    if top is None:
        return []
    share = top.memory_percent if what == "memory" else top.cpu_percent
    label = f"Close {top.name} (pid {top.pid}), which uses {share:.0f} % of {what}"
    return [SelfFix(fix_id="f1", action=Remedy.END_PROCESS, label=label, pid=top.pid, executable=top.name)]


class SelfService:
    """Notices and self-applied fixes for one user's own sessions."""

    def __init__(
        self, diagnostics: DiagnosticsService, commands: CommandService, audit: AuditLog, *, deadline_s: float
    ) -> None:
        self._diagnostics = diagnostics
        self._commands = commands
        self._audit = audit
        self._deadline_s = deadline_s

    def _parts(self, user_id: str) -> list[tuple[Incident, AffectedSession]]:
        mine = self._diagnostics.subjects_of(user_id)
        if not mine:
            return []
        return [
            (incident, part)
            for incident in self._diagnostics.incidents(open_only=True, limit=1000)
            for part in incident.sessions
            if part.active and part.subject in mine
        ]

    def notices(self, user_id: str) -> list[HealthNotice]:
        """The open incidents of ``user_id``'s sessions, newest first."""
        return [
            HealthNotice(
                incident_id=incident.incident_id,
                severity=incident.severity,
                title=incident.title,
                message=part.explanation,  # its numbers, then the likely causes
                opened_ns=incident.opened_ns,
                fixes=fixes_for(incident, part, self._diagnostics.series(part.subject)),
            )
            for incident, part in self._parts(user_id)
        ]

    async def fix(self, user_id: str, incident_id: str, fix_id: str) -> SelfFixResult:
        """Apply one offered fix to the user's own session and wait for the agent's result."""
        found = [(i, p) for i, p in self._parts(user_id) if i.incident_id == incident_id]
        if not found:
            raise NotFoundError(f"no open incident {incident_id!r} on your desktops")
        incident, part = found[0]
        offered = fixes_for(incident, part, self._diagnostics.series(part.subject))
        chosen = next((f for f in offered if f.fix_id == fix_id), None)
        if chosen is None:
            raise NotFoundError(f"incident {incident_id!r} offers no fix {fix_id!r}")
        ref = self._diagnostics.session_of(part.subject)
        assert ref is not None  # _parts kept only sessions it knows
        request = RemediationRequest(action=chosen.action, pid=chosen.pid, executable=chosen.executable)
        issuer = Issuer.user(user_id)
        record = await self._commands.issue(
            ref, request.command(), issuer=issuer, deadline_s=self._deadline_s
        )
        done = await self._commands.wait(ref, record.command_id, self._deadline_s + 5, issuer=issuer)
        result = SelfFixResult(command_id=record.command_id, status=done.status.value, error=done.error)
        await self._audit.append(
            f"user of {part.subject}",
            f"remediation.{chosen.action.value}.self",
            f"incident {incident_id}: {incident.title}",
            subjects=[part.subject],
            evidence={"rule": incident.rule.value, "explanation": part.explanation},
            result={"command_id": record.command_id, "status": result.status, "error": result.error},
        )
        return result
