"""The rules that turn a session's recent metrics into findings.

Threshold rules (docs/diagnostics.md): memory in use above ``memory_percent`` for ``memory_for_s``, CPU
busy above ``cpu_percent`` for ``cpu_for_s``, disk in use at or above ``disk_used_percent``. Baseline
rules: a metric far above what is usual for this session (a robust z-score, median and MAD of the last
``baseline_window_s``, so one spike does not move the baseline) for ``baseline_for_s``; minutes of
history are enough, and a threshold finding on the same metric supersedes it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.signals import Sample, Series

# 1.4826 * MAD estimates a normal distribution's standard deviation; the floor keeps a flat history
# (an idle desktop at 2 % CPU) from calling every small change unusual.
_MAD_SCALE = 1.4826
_MIN_SPREAD = {"cpu_percent": 5.0, "memory_percent": 2.0}


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class Rule(StrEnum):
    MEMORY_PRESSURE = "memory_pressure"
    CPU_SATURATED = "cpu_saturated"
    DISK_FULL = "disk_full"
    CPU_UNUSUAL = "cpu_unusual"
    MEMORY_UNUSUAL = "memory_unusual"


METRIC = {
    Rule.MEMORY_PRESSURE: "memory_percent",
    Rule.CPU_SATURATED: "cpu_percent",
    Rule.DISK_FULL: "disk_used_percent",
    Rule.CPU_UNUSUAL: "cpu_percent",
    Rule.MEMORY_UNUSUAL: "memory_percent",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that holds for one session now: since when, the latest value, and what it was judged against."""

    rule: Rule
    severity: Severity
    since: float
    value: float
    peak: float
    threshold: float  # the threshold, or for a baseline rule the usual value (the baseline's median)
    held_s: float

    @property
    def metric(self) -> str:
        return METRIC[self.rule]


def _run_above(series: Series, metric: str, above: Callable[[float], bool]) -> list[Sample]:
    """The newest samples, back to the first that is not ``above``: the current run, oldest first."""
    run: list[Sample] = []
    for sample in reversed(series.samples):
        if not above(sample.value(metric)):
            break
        run.append(sample)
    run.reverse()
    return run


def _held(
    rule: Rule, severity: Severity, series: Series, threshold: float, for_s: float, at_least: bool = False
) -> Finding | None:
    metric = METRIC[rule]
    run = _run_above(series, metric, (lambda v: v >= threshold) if at_least else (lambda v: v > threshold))
    if not run or run[-1].t - run[0].t < for_s:
        return None
    values = [s.value(metric) for s in run]
    return Finding(rule, severity, run[0].t, values[-1], max(values), threshold, run[-1].t - run[0].t)


def _unusual(rule: Rule, series: Series, settings: DiagnosticsSettings) -> Finding | None:
    """The metric far above this session's own recent median, held ``baseline_for_s``."""
    metric = METRIC[rule]
    newest = series.newest
    if newest is None:
        return None
    history = [s.value(metric) for s in series.before(newest.t - settings.baseline_for_s)]
    if len(history) < settings.baseline_min_samples:
        return None
    median = statistics.median(history)
    mad = statistics.median(abs(v - median) for v in history)
    spread = max(_MAD_SCALE * mad, _MIN_SPREAD[metric])
    limit = median + settings.baseline_z * spread
    found = _held(rule, Severity.WARNING, series, limit, settings.baseline_for_s)
    if found is None:
        return None
    return Finding(rule, found.severity, found.since, found.value, found.peak, round(median, 2), found.held_s)


def evaluate(series: Series, settings: DiagnosticsSettings) -> list[Finding]:
    """Every rule that holds for the session now."""
    found = [
        _held(
            Rule.MEMORY_PRESSURE, Severity.CRITICAL, series, settings.memory_percent, settings.memory_for_s
        ),
        _held(Rule.CPU_SATURATED, Severity.WARNING, series, settings.cpu_percent, settings.cpu_for_s),
        _held(Rule.DISK_FULL, Severity.CRITICAL, series, settings.disk_used_percent, 0.0, at_least=True),
    ]
    findings = [f for f in found if f is not None]
    covered = {f.metric for f in findings}
    for rule in (Rule.CPU_UNUSUAL, Rule.MEMORY_UNUSUAL):
        if METRIC[rule] not in covered:
            unusual = _unusual(rule, series, settings)
            if unusual is not None:
                findings.append(unusual)
    return findings
