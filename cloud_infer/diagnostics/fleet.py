"""The fleet as the admin console shows it: each session's health and newest numbers (its agent's and its
thin client's), a session's recent series for charts, and a search over incidents ("has this happened
before?").

Only numbers leave here for sessions: every numeric field of the newest ``Sample`` (read generically, so
a metric the agent starts to send shows up without a change here), never a string a sample may carry.
Sessions are named by pseudonym, as everywhere in ops.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from cloud_infer.diagnostics.incidents import Incident
from cloud_infer.diagnostics.rules import Severity
from cloud_infer.diagnostics.service import DiagnosticsService
from cloud_infer.diagnostics.signals import NS_PER_S, ExperienceSample, Sample


class Health(StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"


class SessionSummary(BaseModel):
    subject: str = Field(description="The session's pseudonym.")
    health: Health = Field(description="The worst severity among the open incidents it is active in.")
    last_sample_ns: int
    metrics: dict[str, float] = Field(description="The newest sample's numeric metrics.")
    open_incidents: list[str]
    experience: dict[str, float] = Field(
        default_factory=dict,
        description="The thin client's newest report (the protocol side: rtt_ms, fps, frame_delay_ms, "
        "input_latency_ms, bytes_down_per_s, bytes_up_per_s, inputs, window_s, and lag_ms that the "
        "experience rule judges); empty when none has reported to this server.",
    )
    last_experience_ns: int | None = Field(default=None, description="When that report arrived.")


class SessionList(BaseModel):
    sessions: list[SessionSummary]


class SeriesPoints(BaseModel):
    """Columns for a chart: ``t`` (seconds since the epoch) and one list per metric, equally long; the
    thin client's reports likewise in ``experience_t`` and ``experience`` (a figure a report did not
    measure is null)."""

    subject: str
    t: list[float]
    metrics: dict[str, list[float]]
    experience_t: list[float] = Field(default_factory=list)
    experience: dict[str, list[float | None]] = Field(default_factory=dict)


def numbers(sample: Sample) -> dict[str, float]:
    """The sample's numeric metrics by field name (its time, booleans and any text left out)."""
    found: dict[str, float] = {}
    for field in dataclasses.fields(sample):
        value = getattr(sample, field.name)
        if field.name != "t" and isinstance(value, int | float) and not isinstance(value, bool):
            found[field.name] = float(value)
    return found


def summaries(diagnostics: DiagnosticsService) -> list[SessionSummary]:
    """Every session with recent metrics, the most recently reporting first."""
    worst: dict[str, Health] = {}
    incidents: dict[str, list[str]] = {}
    for incident in diagnostics.incidents(open_only=True, limit=10_000):
        health = Health.CRITICAL if incident.severity is Severity.CRITICAL else Health.WARNING
        for part in incident.sessions:
            if not part.active:
                continue
            incidents.setdefault(part.subject, []).append(incident.incident_id)
            if worst.get(part.subject) is not Health.CRITICAL:
                worst[part.subject] = health
    found = []
    for subject, series in reversed(diagnostics.sessions()):
        newest = series.newest
        if newest is None:
            continue
        reports = series.experience
        report = reports[-1] if reports else None
        found.append(
            SessionSummary(
                subject=subject,
                health=worst.get(subject, Health.OK),
                last_sample_ns=int(newest.t * NS_PER_S),
                metrics=numbers(newest),
                open_incidents=incidents.get(subject, []),
                experience=report.figures() if report is not None else {},
                last_experience_ns=int(report.t * NS_PER_S) if report is not None else None,
            )
        )
    return found


def points(
    subject: str, samples: Iterable[Sample], seconds: float, reports: Iterable[ExperienceSample] = ()
) -> SeriesPoints:
    """The samples and the client's reports within ``seconds`` of their newest, as columns."""
    kept = list(samples)
    if kept:
        kept = [s for s in kept if s.t >= kept[-1].t - seconds]
    rows = [numbers(s) for s in kept]
    names = sorted({name for row in rows for name in row})
    recent = list(reports)
    if recent:
        recent = [r for r in recent if r.t >= recent[-1].t - seconds]
    figures = [r.figures() for r in recent]
    measured = sorted({name for row in figures for name in row})
    return SeriesPoints(
        subject=subject,
        t=[s.t for s in kept],
        metrics={name: [row.get(name, 0.0) for row in rows] for name in names},
        experience_t=[r.t for r in recent],
        experience={name: [row.get(name) for row in figures] for name in measured},
    )


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def matches(incident: Incident, query: str) -> bool:
    """Whether every word of ``query`` is in the incident's text: its rule, title, severity, explanations,
    sessions and whatever else it names (process and app names), case-insensitive."""
    words = query.lower().split()
    text = " ".join(_texts(incident.model_dump(mode="json", exclude={"evidence"}))).lower()
    return all(word in text for word in words)


def similar(incident: Incident, incidents: Iterable[Incident]) -> list[Incident]:
    """Incidents of the same rule opened before ``incident``: those of the same fault signature (the same
    app and version, or the same image or host) first, each group newest first."""
    earlier = [
        other
        for other in incidents
        if other.incident_id != incident.incident_id
        and other.rule is incident.rule
        and other.opened_ns < incident.opened_ns
    ]
    return sorted(earlier, key=lambda other: (other.signature != incident.signature, -other.opened_ns))
