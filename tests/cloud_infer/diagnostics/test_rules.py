"""The rules over a session's samples: thresholds held for their time, and the session's own baseline."""

from __future__ import annotations

from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.rules import Rule, Severity, evaluate
from cloud_infer.diagnostics.signals import Sample, Series

SETTINGS = DiagnosticsSettings()


def series(*values: tuple[float, float, float], start: float = 1_000.0) -> Series:
    """One sample a second: (cpu %, memory %, disk %)."""
    found = Series(SETTINGS.baseline_window_s)
    for index, (cpu, memory, disk) in enumerate(values):
        found.add(Sample(start + index, cpu, memory, disk, 0.5))
    return found


def rules(found: Series) -> set[Rule]:
    return {f.rule for f in evaluate(found, SETTINGS)}


def test_memory_pressure_needs_its_five_seconds_above_the_threshold() -> None:
    assert rules(series(*[(20, 97, 40)] * 5)) == set()  # 4 s held
    (finding,) = evaluate(series(*[(20, 97, 40)] * 6), SETTINGS)
    assert (finding.rule, finding.severity, finding.held_s) == (Rule.MEMORY_PRESSURE, Severity.CRITICAL, 5.0)
    # One sample under the threshold restarts the clock.
    assert rules(series(*[(20, 97, 40)] * 4, (20, 90, 40), *[(20, 97, 40)] * 4)) == set()


def test_a_full_disk_is_a_finding_at_once_and_cpu_needs_thirty_seconds() -> None:
    assert rules(series((10, 30, 95.0))) == {Rule.DISK_FULL}
    assert rules(series((10, 30, 94.9))) == set()
    assert rules(series(*[(99, 30, 40)] * 30)) == set()
    assert Rule.CPU_SATURATED in rules(series(*[(99, 30, 40)] * 31))


def test_the_baseline_finds_what_is_unusual_for_this_session_and_ignores_a_spike() -> None:
    quiet = [(3 + (i % 3), 40 + (i % 2), 40) for i in range(60)]
    assert rules(series(*quiet)) == set()
    # CPU bursts of an ordinary desktop (an app starting, a build) last up to a minute.
    assert rules(series(*quiet, *[(70, 41, 40)] * 50)) == set()
    assert rules(series(*quiet, *[(70, 41, 40)] * 61)) == {Rule.CPU_UNUSUAL}
    # Memory is judged sooner: 10 s.
    assert rules(series(*quiet, *[(3, 70, 40)] * 5)) == set()  # a 5 s spike
    assert rules(series(*quiet, *[(3, 70, 40)] * 12)) == {Rule.MEMORY_UNUSUAL}
    # A session that is always busy is not unusual at the same level.
    busy = [(65 + (i % 10), 40, 40) for i in range(60)]
    assert rules(series(*busy, *[(70, 41, 40)] * 61)) == set()
    # Too little history: no judgement.
    assert rules(series(*quiet[:10], *[(70, 41, 40)] * 61)) == set()


def test_the_baseline_is_reused_for_ten_seconds_of_samples_and_then_recomputed() -> None:
    found = series(*[(3 + (i % 3), 40, 40) for i in range(60)])
    evaluate(found, SETTINGS)
    computed_at, _ = found.baselines["memory_percent"]
    for i in range(9):
        found.add(Sample(1_060.0 + i, 3, 40, 40, 0.5))
        evaluate(found, SETTINGS)
    assert found.baselines["memory_percent"][0] == computed_at
    found.add(Sample(1_070.0, 3, 40, 40, 0.5))
    evaluate(found, SETTINGS)
    assert found.baselines["memory_percent"][0] == 1_070.0


def test_a_threshold_finding_supersedes_the_baseline_on_the_same_metric() -> None:
    quiet = [(3, 40, 40)] * 60
    assert rules(series(*quiet, *[(3, 98, 40)] * 12)) == {Rule.MEMORY_PRESSURE}


def test_a_sample_not_newer_than_the_last_is_not_kept() -> None:
    found = series((1, 1, 1), (2, 2, 2))
    assert not found.add(Sample(1_000.5, 9, 9, 9, 0.0))
    assert found.newest is not None and found.newest.cpu_percent == 2
