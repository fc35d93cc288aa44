"""The thin client's experience in ops diagnostics: the ``experience_degraded`` rule over its reports, the
incident it opens and clears on the cloud's clock apart from the agent's rules, the report's ranges,
and the figures the fleet view shows."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.experience import ExperienceReport
from cloud_infer.diagnostics.explain import rank_causes
from cloud_infer.diagnostics.fleet import points, summaries
from cloud_infer.diagnostics.rules import Rule, experience
from cloud_infer.diagnostics.service import DiagnosticsService, pseudonym, pseudonym_key
from cloud_infer.diagnostics.signals import ExperienceSample, Series
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.naming import SYSTEM_SPACE
from tests.support.cloud import SECRET, FaultyStore
from tests.support.diagnostics_desk import GIB

SETTINGS = DiagnosticsSettings()
NS = 1_000_000_000


def report(rtt: float | None = 20.0, shown: float | None = 40.0, **fields: Any) -> ExperienceReport:
    values: dict[str, Any] = {
        "window_s": 5.0,
        "fps": 20.0,
        "bytes_down_per_s": 400_000.0,
        "bytes_up_per_s": 2_000.0,
        "inputs": 10,
        "rtt_ms": rtt,
        "frame_delay_ms": 60.0,
        "input_latency_ms": shown,
    }
    return ExperienceReport(**(values | fields))


def reports(*lags: tuple[float | None, float | None], start: float = 1_000.0, **fields: Any) -> Series:
    """One report every 5 s: (rtt ms, input latency ms)."""
    found = Series(SETTINGS.baseline_window_s)
    for index, (rtt, shown) in enumerate(lags):
        found.add_experience(report(rtt, shown, **fields).sample(start + 5 * index))
    return found


def test_the_rule_needs_every_report_for_twenty_seconds_above_the_lag_threshold() -> None:
    calm = [(20.0, 40.0)] * 6
    assert experience(reports(*calm), SETTINGS, now=1_026) is None
    # Each report covers the 5 s before it: three are 15 s, four are 20 s.
    assert experience(reports(*calm, *[(350.0, 380.0)] * 3), SETTINGS, now=1_041) is None
    found = experience(reports(*calm, *[(350.0, 380.0)] * 4), SETTINGS, now=1_046)
    assert found is not None
    assert (found.rule, found.value, found.threshold, found.held_s) == (
        Rule.EXPERIENCE_DEGRADED,
        380.0,
        300.0,
        20.0,
    )
    # Input that shows late holds it as well as a slow network does; one good report restarts the hold.
    assert experience(reports(*[(30.0, 900.0)] * 4), SETTINGS, now=1_016) is not None
    lags = [(350.0, 380.0)] * 3 + [(20.0, 40.0)] + [(350.0, 380.0)] * 2
    assert experience(reports(*lags), SETTINGS, now=1_026) is None


def test_a_frozen_screen_counts_as_its_whole_window_and_a_silent_client_holds_nothing() -> None:
    frozen = reports(*[(20.0, None)] * 4, fps=0.0)
    found = experience(frozen, SETTINGS, now=1_016)
    assert found is not None and found.value == 5000.0
    assert rank_causes(found, frozen)[0].startswith("the display stream stalled: 10 inputs")
    # No input, no frames: an idle screen, not a frozen one.
    assert experience(reports(*[(20.0, None)] * 4, fps=0.0, inputs=0), SETTINGS, now=1_016) is None
    # The tab closed 15 s ago: the finding stops holding.
    slow = reports(*[(350.0, 380.0)] * 4)
    assert experience(slow, SETTINGS, now=1_015 + SETTINGS.experience_stale_s) is not None
    assert experience(slow, SETTINGS, now=1_016 + SETTINGS.experience_stale_s) is None


def test_the_causes_tell_the_network_from_a_desktop_that_draws_late() -> None:
    slow_network = reports(*[(350.0, 380.0)] * 4)
    found = experience(slow_network, SETTINGS, now=1_016)
    assert found is not None
    assert rank_causes(found, slow_network) == (
        "the network between the user's client and the cloud: a round trip takes 350 ms (391 KiB/s down)",
    )
    slow_desktop = reports(*[(30.0, 900.0)] * 4)
    found = experience(slow_desktop, SETTINGS, now=1_016)
    assert found is not None
    assert rank_causes(found, slow_desktop)[0] == (
        "the desktop draws late: the network answers in 30 ms, an input takes 900 ms to show"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"rtt_ms": -1.0},
        {"rtt_ms": 60_001.0},
        {"fps": 241.0},
        {"window_s": 0.0},
        {"inputs": True},  # strict: a boolean is not a count
        {"inputs": "3"},
        {"bytes_down_per_s": float("inf")},
        {"title": "a window title"},  # numbers only: anything else is refused
    ],
)
def test_a_report_out_of_range_or_with_unknown_fields_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        report(**change)


def test_a_report_may_leave_out_what_its_window_could_not_measure() -> None:
    sample = report(None, None, frame_delay_ms=None, inputs=0, fps=0.0).sample(1.0)
    assert sample.figures() == {
        "lag_ms": 0.0,
        "fps": 0.0,
        "bytes_down_per_s": 400_000.0,
        "bytes_up_per_s": 2_000.0,
        "inputs": 0.0,
        "window_s": 5.0,
    }


class Clock:
    def __init__(self) -> None:
        self.t = 2_000_000.0

    def __call__(self) -> float:
        return self.t


def memory(seq: int, t_ns: int, percent: float) -> pb.Event:
    sample = pb.SystemMetrics(
        cpu_percent=20.0,
        memory_used_bytes=int(16 * GIB * percent / 100),
        memory_total_bytes=16 * GIB,
        disk_used_percent=40.0,
    )
    return pb.Event(seq=seq, time_unix_nano=t_ns, metrics=sample)


async def test_the_incident_opens_and_clears_on_the_clients_reports_apart_from_the_agents_rules(
    store: FaultyStore, user: str, session: str
) -> None:
    clock = Clock()
    diagnostics = DiagnosticsService(
        store, DiagnosticsSettings(clear_after_s=10), pseudonym_key(SECRET), clock
    )
    subject = pseudonym(pseudonym_key(SECRET), user, session)
    # The agent's clock is ten minutes behind the cloud's: each side is judged on its own.
    agent_ns = int((clock.t - 600) * NS)
    seq = 0

    async def agent_reports(seconds: int, percent: float) -> None:
        nonlocal seq, agent_ns
        for _ in range(seconds):
            seq, agent_ns = seq + 1, agent_ns + NS
            await diagnostics.on_committed(user, session, [memory(seq, agent_ns, percent)])

    async def client_reports(count: int, rtt: float) -> None:
        for _ in range(count):
            clock.t += 5
            await diagnostics.record_experience(user, session, report(rtt, rtt + 30))

    await agent_reports(3, 40.0)
    await client_reports(6, 20.0)
    assert diagnostics.incidents() == []
    await client_reports(4, 400.0)
    (incident,) = diagnostics.incidents(open_only=True)
    assert (incident.rule, incident.title) == (Rule.EXPERIENCE_DEGRADED, "Thin client experience degraded")
    assert incident.causes == [
        "the network between the user's client and the cloud: a round trip takes 400 ms (391 KiB/s down)"
    ]
    assert [(e.metric, e.value) for e in incident.evidence] == [("lag_ms", 430.0)]
    assert diagnostics.holds(subject, Rule.EXPERIENCE_DEGRADED)
    assert await store.list_keys(SYSTEM_SPACE, f"ops/incidents/{incident.incident_id}")

    # Memory pressure on the agent's side opens its own incident and leaves the client's alone.
    await agent_reports(7, 97.0)
    assert {i.rule for i in diagnostics.incidents(open_only=True)} == {
        Rule.EXPERIENCE_DEGRADED,
        Rule.MEMORY_PRESSURE,
    }
    # The agent recovers: its incident clears after 10 s of its own clock, the client's holds on.
    await agent_reports(12, 40.0)
    assert {i.rule for i in diagnostics.incidents(open_only=True)} == {Rule.EXPERIENCE_DEGRADED}

    # The tab closes: no more reports. The agent's next batches judge the silent client on the
    # cloud's clock; once stale for clear_after_s, the incident resolves.
    clock.t += 10
    await agent_reports(1, 40.0)  # 10 s since the last report: it still holds
    clock.t += 6
    await agent_reports(1, 40.0)  # 16 s: stale, absent for 6 s
    assert diagnostics.incidents(open_only=True)
    assert not diagnostics.holds(subject, Rule.EXPERIENCE_DEGRADED)
    clock.t += 4
    await agent_reports(1, 40.0)
    assert diagnostics.incidents(open_only=True) == []


async def test_the_fleet_view_shows_the_clients_newest_figures_and_their_series(
    store: FaultyStore, user: str, session: str
) -> None:
    clock = Clock()
    diagnostics = DiagnosticsService(store, SETTINGS, pseudonym_key(SECRET), clock)
    await diagnostics.on_committed(user, session, [memory(1, int(clock.t * NS), 40.0)])
    (summary,) = summaries(diagnostics)
    assert (summary.experience, summary.last_experience_ns) == ({}, None)
    for rtt in (20.0, 25.0, None):
        clock.t += 5
        await diagnostics.record_experience(user, session, report(rtt, 50.0))
    (summary,) = summaries(diagnostics)
    assert summary.last_experience_ns == int(clock.t * NS)
    assert summary.experience == {
        "lag_ms": 50.0,
        "fps": 20.0,
        "bytes_down_per_s": 400_000.0,
        "bytes_up_per_s": 2_000.0,
        "inputs": 10.0,
        "window_s": 5.0,
        "frame_delay_ms": 60.0,
        "input_latency_ms": 50.0,
    }
    series = diagnostics.series(summary.subject)
    assert series is not None
    chart = points(summary.subject, series.samples, 7, series.experience)
    assert chart.experience_t == [clock.t - 5, clock.t]
    assert chart.experience["rtt_ms"] == [25.0, None]
    assert chart.experience["input_latency_ms"] == [50.0, 50.0]


def test_a_sample_keeps_what_the_report_measured() -> None:
    sample = report(12.5, 80.0).sample(7.0)
    assert sample == ExperienceSample(
        t=7.0,
        window_s=5.0,
        fps=20.0,
        bytes_down_per_s=400_000.0,
        bytes_up_per_s=2_000.0,
        inputs=10,
        rtt_ms=12.5,
        frame_delay_ms=60.0,
        input_latency_ms=80.0,
    )
