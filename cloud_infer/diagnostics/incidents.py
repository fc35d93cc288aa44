"""Incidents: one fault across the fleet is one incident, with every session it hits and its evidence.

A finding's fault signature is its rule and, for an app's fault (hang, crash, crash loop, OOM kill),
the app and its version; for a fault of the desktop (memory, CPU, disk, responsiveness, link, swap, the
thin client's experience), where the session runs: its image, or its host when the agent names no image.
A session's finding joins the open incident of the same signature when that incident's newest session
started within ``group_window_s`` (the fleet's sessions hit by one cause at one time), and opens a new
one otherwise.
A session's part is over once its finding has been absent for ``clear_after_s`` (on the clock its rule
is judged on); the incident is resolved when every part is over. Sessions appear under pseudonyms only,
hosts as ``h-`` pseudonyms.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field

from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.explain import explain, title
from cloud_infer.diagnostics.rules import AGENT_RULES, APP_RULES, METRIC, Finding, Rule, Severity
from cloud_infer.diagnostics.signals import NS_PER_S, Consumer, ProcessEvent

# Evidence points kept per incident (the newest): enough for a chart of each session's last minutes.
MAX_EVIDENCE = 600
MAX_EVENTS = 200


class AffectedSession(BaseModel):
    subject: str = Field(description="The session's pseudonym; who it belongs to is not shown.")
    first_ns: int
    last_ns: int = Field(description="When the finding last held.")
    active: bool
    value: float
    peak: float
    explanation: str
    place: str = Field(default="", description="The image the session runs, or its host's pseudonym.")
    app_id: str = ""
    pid: int = Field(default=0, description="The app's process in this session (app faults).")
    executable: str = ""


class Evidence(BaseModel):
    subject: str
    t_ns: int
    metric: str
    value: float


class ProcessEvidence(BaseModel):
    """A process event of an affected session: an app's hang, recovery, crash, OOM kill, start or exit."""

    subject: str
    t_ns: int
    kind: str
    app_id: str
    pid: int
    executable: str
    app_version: str = ""
    signal: int = 0
    core_dumped: bool = False
    hung_ms: int = 0


class TopProcess(BaseModel):
    """One of an affected session's top consumers at its newest sample (names only)."""

    subject: str
    t_ns: int
    pid: int
    name: str
    app_id: str
    cpu_percent: float
    memory_percent: float


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
    signature: str = Field(default="", description="What makes two sessions' findings one fault.")
    app_id: str = ""
    app_version: str = ""
    causes: list[str] = Field(default_factory=list, description="Likely causes, most likely first.")
    events: list[ProcessEvidence] = Field(default_factory=list)
    top_processes: list[TopProcess] = Field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.resolved_ns is None

    def session(self, subject: str) -> AffectedSession | None:
        return next((s for s in self.sessions if s.subject == subject), None)


def signature(finding: Finding, place: str) -> str:
    """The fault's signature: rule + app + version for an app's fault, rule + image or host otherwise."""
    if finding.rule in APP_RULES:
        return f"{finding.rule.value}|app={finding.app_id}|version={finding.app_version}"
    return f"{finding.rule.value}|place={place}"


def _explanation(incident: Incident, newest: Finding) -> str:
    affected = len(incident.sessions)
    where = f"{affected} sessions are affected. " if affected > 1 else ""
    return where + explain(newest)


class IncidentBook:
    """The incidents of this server; ``observe`` applies one session's findings at one time."""

    def __init__(self, settings: DiagnosticsSettings, incidents: Iterable[Incident] = ()) -> None:
        self._settings = settings
        self._incidents: dict[str, Incident] = {i.incident_id: i for i in incidents}
        for incident in self._incidents.values():
            # Stored before signatures: they grouped by rule alone, as a place-less desktop fault does.
            incident.signature = incident.signature or f"{incident.rule.value}|place="

    def all(self) -> list[Incident]:
        """Newest first."""
        return sorted(self._incidents.values(), key=lambda i: i.opened_ns, reverse=True)

    def get(self, incident_id: str) -> Incident | None:
        return self._incidents.get(incident_id)

    def observe(
        self,
        subject: str,
        t: float,
        findings: Sequence[Finding],
        values: dict[str, float],
        *,
        place: str = "",
        events: Sequence[ProcessEvent] = (),
        top: Sequence[Consumer] = (),
        judged: frozenset[Rule] = AGENT_RULES,
    ) -> list[Incident]:
        """Apply ``subject``'s findings, metrics ``values``, new process ``events`` and newest ``top``
        consumers at ``t`` (s); the incidents changed. Only parts of the ``judged`` rules clear: the
        agent's signals and the thin client's reports are judged apart, each on its own clock."""
        t_ns = int(t * NS_PER_S)
        changed: dict[str, Incident] = {}
        holding = set()
        for finding in findings:
            key = signature(finding, place)
            holding.add(key)
            incident = self._open_with(key, subject) or self._join_or_open(finding, key, t_ns)
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
                    place=place,
                )
                incident.sessions.append(part)
            part.last_ns, part.active, part.value = t_ns, True, finding.value
            part.peak, part.explanation = max(part.peak, finding.peak), explain(finding)
            part.app_id, part.pid, part.executable = finding.app_id, finding.pid, finding.executable
            incident.updated_ns = t_ns
            incident.explanation = _explanation(incident, finding)
            incident.causes = list(finding.causes)
            changed[incident.incident_id] = incident
        for incident in [i for i in self._incidents.values() if i.open]:
            part = incident.session(subject)
            if part is None:
                continue
            if self._add_evidence(incident, subject, t_ns, values, events, top):
                changed[incident.incident_id] = incident
            if incident.signature in holding or not part.active or incident.rule not in judged:
                continue
            if t_ns - part.last_ns >= self._settings.clear_after_s * NS_PER_S:
                part.active = False
                incident.updated_ns = t_ns
                if not any(s.active for s in incident.sessions):
                    incident.resolved_ns = t_ns
                changed[incident.incident_id] = incident
        return list(changed.values())

    def _add_evidence(
        self,
        incident: Incident,
        subject: str,
        t_ns: int,
        values: dict[str, float],
        events: Sequence[ProcessEvent],
        top: Sequence[Consumer],
    ) -> bool:
        added = False
        metric = METRIC[incident.rule]
        if metric in values:
            incident.evidence.append(
                Evidence(subject=subject, t_ns=t_ns, metric=metric, value=values[metric])
            )
            del incident.evidence[:-MAX_EVIDENCE]
            added = True
        for event in events:
            if incident.app_id and event.app_id != incident.app_id:
                continue  # an app's incident keeps that app's events; a desktop's keeps them all
            incident.events.append(
                ProcessEvidence(
                    subject=subject,
                    t_ns=int(event.t * NS_PER_S),
                    kind=event.kind,
                    app_id=event.app_id,
                    pid=event.pid,
                    executable=event.executable,
                    app_version=event.app_version,
                    signal=event.signal,
                    core_dumped=event.core_dumped,
                    hung_ms=event.hung_ms,
                )
            )
            del incident.events[:-MAX_EVENTS]
            added = True
        if top:
            kept = [p for p in incident.top_processes if p.subject != subject]
            incident.top_processes = kept + [
                TopProcess(
                    subject=subject,
                    t_ns=t_ns,
                    pid=c.pid,
                    name=c.name,
                    app_id=c.app_id,
                    cpu_percent=round(c.cpu_percent, 1),
                    memory_percent=round(c.memory_percent, 1),
                )
                for c in top
            ]
            added = True
        return added

    def _open_with(self, key: str, subject: str) -> Incident | None:
        for incident in self._incidents.values():
            if incident.open and incident.signature == key:
                part = incident.session(subject)
                if part is not None and part.active:
                    return incident
        return None

    def _join_or_open(self, finding: Finding, key: str, t_ns: int) -> Incident:
        window_ns = self._settings.group_window_s * NS_PER_S
        for incident in self._incidents.values():
            newest_start = max((s.first_ns for s in incident.sessions), default=incident.opened_ns)
            if incident.open and incident.signature == key and t_ns - newest_start <= window_ns:
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
            signature=key,
            app_id=finding.app_id if finding.rule in APP_RULES else "",
            app_version=finding.app_version if finding.rule in APP_RULES else "",
            causes=list(finding.causes),
        )
        self._incidents[incident.incident_id] = incident
        return incident
