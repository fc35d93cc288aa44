"""Incidents: one fault across the fleet is one incident, with every session it hits and its evidence.

A session's finding joins the open incident of the same rule when that incident's newest session
started within ``group_window_s`` (the fleet's sessions hit by one cause at one time), and opens a new
one otherwise. A session's part is over once its finding has been absent for ``clear_after_s``; the
incident is resolved when every part is over. Sessions appear under pseudonyms only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field

from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.explain import explain, title
from cloud_infer.diagnostics.rules import METRIC, Finding, Rule, Severity
from cloud_infer.diagnostics.signals import NS_PER_S

# Evidence points kept per incident (the newest): enough for a chart of each session's last minutes.
MAX_EVIDENCE = 600


class AffectedSession(BaseModel):
    subject: str = Field(description="The session's pseudonym; who it belongs to is not shown.")
    first_ns: int
    last_ns: int = Field(description="When the finding last held.")
    active: bool
    value: float
    peak: float
    explanation: str


class Evidence(BaseModel):
    subject: str
    t_ns: int
    metric: str
    value: float


class Incident(BaseModel):
    incident_id: str
    rule: Rule
    severity: Severity
    title: str
    opened_ns: int
    updated_ns: int
    resolved_ns: int | None = None
    explanation: str
    sessions: list[AffectedSession]
    evidence: list[Evidence] = Field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.resolved_ns is None

    def session(self, subject: str) -> AffectedSession | None:
        return next((s for s in self.sessions if s.subject == subject), None)


def _explanation(incident: Incident, newest: Finding) -> str:
    affected = len(incident.sessions)
    where = f"{affected} sessions are affected. " if affected > 1 else ""
    return where + explain(newest)


class IncidentBook:
    """The incidents of this server; ``observe`` applies one session's findings at one time."""

    def __init__(self, settings: DiagnosticsSettings, incidents: Iterable[Incident] = ()) -> None:
        self._settings = settings
        self._incidents: dict[str, Incident] = {i.incident_id: i for i in incidents}

    def all(self) -> list[Incident]:
        """Newest first."""
        return sorted(self._incidents.values(), key=lambda i: i.opened_ns, reverse=True)

    def get(self, incident_id: str) -> Incident | None:
        return self._incidents.get(incident_id)

    def observe(
        self, subject: str, t: float, findings: Sequence[Finding], values: dict[str, float]
    ) -> list[Incident]:
        """Apply ``subject``'s findings and metrics ``values`` at ``t`` (s); the incidents changed."""
        t_ns = int(t * NS_PER_S)
        changed: dict[str, Incident] = {}
        holding = {f.rule: f for f in findings}
        for finding in findings:
            incident = self._open_with(finding.rule, subject) or self._join_or_open(finding, t_ns)
            part = incident.session(subject)
            if part is None:
                part = AffectedSession(
                    subject=subject,
                    first_ns=int(finding.since * NS_PER_S),
                    last_ns=t_ns,
                    active=True,
                    value=finding.value,
                    peak=finding.peak,
                    explanation=explain(finding),
                )
                incident.sessions.append(part)
            part.last_ns, part.active, part.value = t_ns, True, finding.value
            part.peak, part.explanation = max(part.peak, finding.peak), explain(finding)
            incident.updated_ns = t_ns
            incident.explanation = _explanation(incident, finding)
            changed[incident.incident_id] = incident
        for incident in [i for i in self._incidents.values() if i.open]:
            part = incident.session(subject)
            if part is None:
                continue
            metric = METRIC[incident.rule]
            if metric in values:
                incident.evidence.append(
                    Evidence(subject=subject, t_ns=t_ns, metric=metric, value=values[metric])
                )
                del incident.evidence[:-MAX_EVIDENCE]
                changed[incident.incident_id] = incident
            if incident.rule in holding or not part.active:
                continue
            if t_ns - part.last_ns >= self._settings.clear_after_s * NS_PER_S:
                part.active = False
                incident.updated_ns = t_ns
                if not any(s.active for s in incident.sessions):
                    incident.resolved_ns = t_ns
                changed[incident.incident_id] = incident
        return list(changed.values())

    def _open_with(self, rule: Rule, subject: str) -> Incident | None:
        for incident in self._incidents.values():
            if incident.open and incident.rule is rule:
                part = incident.session(subject)
                if part is not None and part.active:
                    return incident
        return None

    def _join_or_open(self, finding: Finding, t_ns: int) -> Incident:
        window_ns = self._settings.group_window_s * NS_PER_S
        for incident in self._incidents.values():
            newest_start = max((s.first_ns for s in incident.sessions), default=incident.opened_ns)
            if incident.open and incident.rule is finding.rule and t_ns - newest_start <= window_ns:
                return incident
        incident = Incident(
            incident_id=f"inc-{uuid.uuid4().hex[:12]}",
            rule=finding.rule,
            severity=finding.severity,
            title=title(finding.rule),
            opened_ns=t_ns,
            updated_ns=t_ns,
            explanation=explain(finding),
            sessions=[],
        )
        self._incidents[incident.incident_id] = incident
        return incident
