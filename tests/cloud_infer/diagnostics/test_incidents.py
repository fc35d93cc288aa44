"""Grouping: one fault across sessions at one time is one incident; parts clear, incidents resolve."""

from __future__ import annotations

from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.incidents import IncidentBook
from cloud_infer.diagnostics.rules import Finding, Rule, Severity

SETTINGS = DiagnosticsSettings()
VALUES = {"memory_percent": 97.0}


def memory(since: float, value: float = 97.0) -> Finding:
    return Finding(Rule.MEMORY_PRESSURE, Severity.CRITICAL, since, value, value, 95.0, 10.0)


def test_sessions_hit_at_one_time_share_one_incident_and_later_ones_open_another() -> None:
    book = IncidentBook(SETTINGS)
    (first,) = book.observe("s-a", 110, [memory(100)], VALUES)
    (joined,) = book.observe("s-b", 130, [memory(120)], VALUES)
    assert joined.incident_id == first.incident_id
    assert [s.subject for s in joined.sessions] == ["s-a", "s-b"]
    assert joined.explanation.startswith("2 sessions are affected. Memory in use has been above 95 %")
    (late,) = book.observe("s-c", 400, [memory(390)], VALUES)
    assert late.incident_id != first.incident_id


def test_a_part_clears_after_its_quiet_time_and_the_incident_resolves_with_the_last() -> None:
    book = IncidentBook(SETTINGS)
    (incident,) = book.observe("s-a", 110, [memory(100)], VALUES)
    book.observe("s-b", 112, [memory(102)], VALUES)
    book.observe("s-b", 130, [memory(102)], VALUES)
    book.observe("s-a", 130, [], {"memory_percent": 60.0})  # 20 s quiet: not yet
    assert incident.session("s-a").active  # type: ignore[union-attr]
    book.observe("s-a", 141, [], {"memory_percent": 60.0})
    assert not incident.session("s-a").active and incident.open  # type: ignore[union-attr]
    book.observe("s-b", 150, [], {"memory_percent": 50.0})
    assert incident.open
    book.observe("s-b", 161, [], {"memory_percent": 50.0})
    assert not incident.open and incident.resolved_ns == 161 * 1_000_000_000
    # The evidence is the series of each affected session.
    assert [(e.subject, e.value) for e in incident.evidence][-2:] == [("s-b", 50.0), ("s-b", 50.0)]


def test_the_same_session_stays_one_part_while_its_finding_holds() -> None:
    book = IncidentBook(SETTINGS)
    for t in range(110, 200, 5):
        book.observe("s-a", t, [memory(100, 95.0 + (t % 4))], VALUES)
    (incident,) = book.all()
    (part,) = incident.sessions
    assert part.peak == 98.0 and part.last_ns == 195 * 1_000_000_000
