"""The rules that turn a session's recent signals into findings (thresholds in docs/diagnostics.md).

Threshold rules on the metrics: memory in use above ``memory_percent`` for ``memory_for_s``, CPU busy
above ``cpu_percent`` for ``cpu_for_s``, disk in use at or above ``disk_used_percent``, the desktop probe
slower than ``probe_ms`` for ``probe_for_s``, the cloud link slower than ``link_ms`` for ``link_for_s``,
swapping faster than ``swap_pages_per_s`` for ``swap_for_s``. Baseline rules: a metric far above what is
usual for this session (a robust z-score, median and MAD of the last ``baseline_window_s``, so one
spike does not move the baseline) for ``baseline_for_s``; a threshold finding on the same metric
supersedes it. App rules on the process events, one finding per app: a window hung for ``hang_s``, a
crash in the last ``fault_hold_s``, ``crash_loop_count`` crashes of one app within
``crash_loop_window_s`` (a crash loop, which supersedes the crash), an OOM kill in the last
``fault_hold_s``, a start far slower than the app's usual start across the fleet (``AppStarts``, a
per-app baseline) in the last ``fault_hold_s``. The client rule on the thin client's experience reports
(``experience``, judged on the cloud's clock): what the user waits for above ``experience_lag_ms`` in
every report for ``experience_for_s``, while the client still reports (``experience_stale_s``).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.signals import ProcessEvent, Sample, Series

# 1.4826 * MAD estimates a normal distribution's standard deviation; the floor keeps a flat history
# (an idle desktop at 2 % CPU) from calling every small change unusual.
_MAD_SCALE = 1.4826
_BASELINE_REFRESH_S = 10.0
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
    DESKTOP_UNRESPONSIVE = "desktop_unresponsive"
    LINK_DEGRADED = "link_degraded"
    SWAP_THRASH = "swap_thrash"
    APP_HANG = "app_hang"
    APP_CRASH = "app_crash"
    CRASH_LOOP = "crash_loop"
    OOM_KILL = "oom_kill"
    APP_START_SLOW = "app_start_slow"
    EXPERIENCE_DEGRADED = "experience_degraded"


# The sample metric each rule judges ("" for the app rules, judged on process events).
METRIC = {
    Rule.MEMORY_PRESSURE: "memory_percent",
    Rule.CPU_SATURATED: "cpu_percent",
    Rule.DISK_FULL: "disk_used_percent",
    Rule.CPU_UNUSUAL: "cpu_percent",
    Rule.MEMORY_UNUSUAL: "memory_percent",
    Rule.DESKTOP_UNRESPONSIVE: "probe_ms",
    Rule.LINK_DEGRADED: "link_ms",
    Rule.SWAP_THRASH: "swap_pages_per_s",
    Rule.APP_HANG: "",
    Rule.APP_CRASH: "",
    Rule.CRASH_LOOP: "",
    Rule.OOM_KILL: "",
    Rule.APP_START_SLOW: "",
    Rule.EXPERIENCE_DEGRADED: "lag_ms",  # of the client's reports (ExperienceSample), not of Sample
}
# Faults of an app: grouped across the fleet by the app and its version; the others by host or image.
APP_RULES = frozenset({Rule.APP_HANG, Rule.APP_CRASH, Rule.CRASH_LOOP, Rule.OOM_KILL, Rule.APP_START_SLOW})
# Judged on the thin client's reports, on the cloud's clock; ``evaluate`` judges the agent's signals.
CLIENT_RULES = frozenset({Rule.EXPERIENCE_DEGRADED})
AGENT_RULES = frozenset(Rule) - CLIENT_RULES


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that holds for one session now: since when, the latest value, and what it was judged against.

    App rules name the app's process (``app_id``, ``pid``, ``executable``, ``app_version``); their value
    is seconds hung, crashes counted, or the victim's memory in MiB. ``causes`` are the likely causes,
    most likely first (``explain.with_causes`` fills them from the session's evidence)."""

    rule: Rule
    severity: Severity
    since: float
    value: float
    peak: float
    threshold: float  # the threshold, or for a baseline rule the usual value (the baseline's median)
    held_s: float
    app_id: str = ""
    app_version: str = ""
    pid: int = 0
    executable: str = ""
    signal: int = 0
    causes: tuple[str, ...] = ()

    @property
    def metric(self) -> str:
        return METRIC[self.rule]


def _run_above(series: Series, metric: str, above: Callable[[float], bool]) -> list[Sample]:
    """The newest samples, back to the first that is not ``above``: the current run, oldest first."""
    run: list[Sample] = []
    for sample in series.newest_first():
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


def _baseline(
    series: Series, metric: str, for_s: float, settings: DiagnosticsSettings
) -> tuple[float, float] | None:
    """The session's usual value of ``metric`` and its spread, from the history before the last ``for_s``.

    Recomputed every ``_BASELINE_REFRESH_S`` of sample time, not per sample: minutes of history hardly
    move in seconds, and sorting them for every sample was most of the consumer's CPU (323 us a sample).
    """
    newest = series.newest
    assert newest is not None
    cached = series.baselines.get(metric)
    if cached is not None and 0 <= newest.t - cached[0] < _BASELINE_REFRESH_S:
        return cached[1]
    history = [s.value(metric) for s in series.before(newest.t - for_s)]
    baseline = None
    if len(history) >= settings.baseline_min_samples:
        median = statistics.median(history)
        mad = statistics.median(abs(v - median) for v in history)
        baseline = (median, max(_MAD_SCALE * mad, _MIN_SPREAD[metric]))
    series.baselines[metric] = (newest.t, baseline)
    return baseline


def _unusual(rule: Rule, series: Series, settings: DiagnosticsSettings) -> Finding | None:
    """The metric far above this session's own recent median, held long enough (``cpu_unusual_for_s``
    for CPU, ``baseline_for_s`` otherwise)."""
    metric = METRIC[rule]
    if series.newest is None:
        return None
    for_s = settings.cpu_unusual_for_s if rule is Rule.CPU_UNUSUAL else settings.baseline_for_s
    baseline = _baseline(series, metric, for_s, settings)
    if baseline is None:
        return None
    median, spread = baseline
    limit = median + settings.baseline_z * spread
    found = _held(rule, Severity.WARNING, series, limit, for_s)
    if found is None:
        return None
    return Finding(rule, found.severity, found.since, found.value, found.peak, round(median, 2), found.held_s)


def _app_finding(
    rule: Rule,
    severity: Severity,
    event: ProcessEvent,
    since: float,
    value: float,
    threshold: float,
    now: float,
) -> Finding:
    return Finding(
        rule,
        severity,
        since,
        value,
        value,
        threshold,
        now - since,
        app_id=event.app_id,
        app_version=event.app_version,
        pid=event.pid,
        executable=event.executable,
        signal=event.signal,
    )


def _hangs(series: Series, settings: DiagnosticsSettings) -> list[Finding]:
    """Per app, its longest hang still going on: a HUNG event with no later sign of life or end."""
    now = series.now
    hung: dict[int, tuple[ProcessEvent, float]] = {}  # pid -> (event, when the hang began)
    for event in series.events:
        if event.kind == "hung":
            hung.setdefault(event.pid, (event, event.t - event.hung_ms / 1000))
        elif event.kind in ("recovered", "crashed", "oom_killed", "exited"):
            hung.pop(event.pid, None)
    longest: dict[str, Finding] = {}
    for event, began in hung.values():
        held = now - began
        if held < settings.hang_s:
            continue
        found = _app_finding(Rule.APP_HANG, Severity.CRITICAL, event, began, held, settings.hang_s, now)
        if event.app_id not in longest or held > longest[event.app_id].value:
            longest[event.app_id] = found
    return list(longest.values())


def _crashes(series: Series, settings: DiagnosticsSettings) -> list[Finding]:
    """Per app (and version): a crash loop, else a recent crash; each recent OOM kill's victim and slow
    start."""
    now = series.now
    by_app: dict[tuple[str, str], list[ProcessEvent]] = defaultdict(list)
    findings: list[Finding] = []
    for event in series.events:
        if event.kind == "crashed":
            by_app[(event.app_id, event.app_version)].append(event)
        elif event.kind == "slow_start" and now - event.t <= settings.fault_hold_s:
            seconds, usual = event.startup_ms / 1000, event.usual_ms / 1000
            findings.append(
                _app_finding(Rule.APP_START_SLOW, Severity.WARNING, event, event.t, seconds, usual, now)
            )
        elif event.kind == "oom_killed" and now - event.t <= settings.fault_hold_s:
            mib = event.rss_bytes / 2**20
            findings.append(_app_finding(Rule.OOM_KILL, Severity.CRITICAL, event, event.t, mib, 0, now))
    for crashes in by_app.values():
        newest = crashes[-1]
        in_loop = [c for c in crashes if newest.t - c.t <= settings.crash_loop_window_s]
        if len(in_loop) >= settings.crash_loop_count and now - newest.t <= settings.crash_loop_window_s:
            findings.append(
                _app_finding(
                    Rule.CRASH_LOOP,
                    Severity.CRITICAL,
                    newest,
                    in_loop[0].t,
                    len(in_loop),
                    settings.crash_loop_count,
                    now,
                )
            )
        elif now - newest.t <= settings.fault_hold_s:
            recent = [c for c in crashes if now - c.t <= settings.fault_hold_s]
            findings.append(
                _app_finding(Rule.APP_CRASH, Severity.WARNING, newest, recent[0].t, len(recent), 1, now)
            )
    return findings


def evaluate(series: Series, settings: DiagnosticsSettings) -> list[Finding]:
    """Every rule that holds for the session now."""
    found = [
        _held(
            Rule.MEMORY_PRESSURE, Severity.CRITICAL, series, settings.memory_percent, settings.memory_for_s
        ),
        _held(Rule.CPU_SATURATED, Severity.WARNING, series, settings.cpu_percent, settings.cpu_for_s),
        _held(Rule.DISK_FULL, Severity.CRITICAL, series, settings.disk_used_percent, 0.0, at_least=True),
        _held(Rule.DESKTOP_UNRESPONSIVE, Severity.CRITICAL, series, settings.probe_ms, settings.probe_for_s),
        _held(Rule.LINK_DEGRADED, Severity.WARNING, series, settings.link_ms, settings.link_for_s),
        _held(Rule.SWAP_THRASH, Severity.WARNING, series, settings.swap_pages_per_s, settings.swap_for_s),
    ]
    findings = [f for f in found if f is not None]
    covered = {f.metric for f in findings}
    for rule in (Rule.CPU_UNUSUAL, Rule.MEMORY_UNUSUAL):
        if METRIC[rule] not in covered:
            unusual = _unusual(rule, series, settings)
            if unusual is not None:
                findings.append(unusual)
    return findings + _hangs(series, settings) + _crashes(series, settings)


def experience(series: Series, settings: DiagnosticsSettings, now: float) -> Finding | None:
    """The client's experience degraded: ``lag_ms`` above the threshold in each of its newest reports
    for ``experience_for_s``, the newest within ``experience_stale_s`` of ``now`` (the cloud's clock)."""
    reports = series.experience
    if not reports or now - reports[-1].t > settings.experience_stale_s:
        return None
    run = []
    for report in reversed(reports):
        if report.lag_ms <= settings.experience_lag_ms:
            break
        run.append(report)
    run.reverse()
    # A report covers the window before it arrived: the first one's window counts toward the hold.
    if not run or run[-1].t - run[0].t + run[0].window_s < settings.experience_for_s:
        return None
    values = [r.lag_ms for r in run]
    since = run[0].t - run[0].window_s
    return Finding(
        Rule.EXPERIENCE_DEGRADED,
        Severity.WARNING,
        since,
        values[-1],
        max(values),
        settings.experience_lag_ms,
        run[-1].t - since,
    )
