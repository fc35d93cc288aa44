"""Deterministic explanations: what held, for how long, on what evidence, and the likely causes ranked
from the session's own evidence (its top consumers and process events), so an incident is explained
without a model. Where the evidence names no cause, the cause says "unknown"."""

from __future__ import annotations

import dataclasses
import signal

from cloud_infer.diagnostics.rules import Finding, Rule
from cloud_infer.diagnostics.signals import Consumer, Sample, Series

# A process holding less than this share of memory, or of a core, is not named as a cause.
_MIN_MEMORY_PERCENT = 10.0
_MIN_CPU_PERCENT = 25.0
_MAX_CAUSES = 3

_TITLE = {
    Rule.MEMORY_PRESSURE: "Memory pressure",
    Rule.CPU_SATURATED: "CPU saturated",
    Rule.DISK_FULL: "Disk almost full",
    Rule.CPU_UNUSUAL: "Unusual CPU use",
    Rule.MEMORY_UNUSUAL: "Unusual memory use",
    Rule.DESKTOP_UNRESPONSIVE: "Desktop unresponsive",
    Rule.LINK_DEGRADED: "Cloud link degraded",
    Rule.SWAP_THRASH: "Swap thrashing",
    Rule.APP_HANG: "App not responding",
    Rule.APP_CRASH: "App crashed",
    Rule.CRASH_LOOP: "App crash loop",
    Rule.OOM_KILL: "Process killed for memory",
    Rule.APP_START_SLOW: "App slow to start",
    Rule.EXPERIENCE_DEGRADED: "Thin client experience degraded",
}
# (what, how it compares, unit) of the metric rules.
_WHAT = {
    Rule.MEMORY_PRESSURE: ("Memory in use", "above {threshold:g} %", "%"),
    Rule.CPU_SATURATED: ("CPU busy", "above {threshold:g} %", "%"),
    Rule.DISK_FULL: ("Disk in use", "at or above {threshold:g} %", "%"),
    Rule.CPU_UNUSUAL: ("CPU busy", "far above this session's usual {threshold:g} %", "%"),
    Rule.MEMORY_UNUSUAL: ("Memory in use", "far above this session's usual {threshold:g} %", "%"),
    Rule.DESKTOP_UNRESPONSIVE: ("The desktop's response time", "above {threshold:g} ms", "ms"),
    Rule.LINK_DEGRADED: ("The cloud's acknowledgement time", "above {threshold:g} ms", "ms"),
    Rule.SWAP_THRASH: ("Swapping", "above {threshold:g} pages/s", "pages/s"),
    Rule.EXPERIENCE_DEGRADED: ("What the user's thin client waits for", "above {threshold:g} ms", "ms"),
}
_CONSEQUENCE = {
    Rule.MEMORY_PRESSURE: "the desktop is close to running out of memory: apps slow down, then the kernel "
    "kills the largest process",
    Rule.CPU_SATURATED: "every core is busy: the desktop answers input late",
    Rule.DISK_FULL: "the disk is nearly full: saving files and app caches will fail",
    Rule.CPU_UNUSUAL: "something started using much more CPU than this session usually does",
    Rule.MEMORY_UNUSUAL: "something started holding much more memory than this session usually does",
    Rule.DESKTOP_UNRESPONSIVE: "input and repaints reach the user late",
    Rule.LINK_DEGRADED: "what the desktop senses reaches the cloud late, and commands reach it late",
    Rule.SWAP_THRASH: "memory pages go to disk and back: every app slows down",
    Rule.EXPERIENCE_DEGRADED: "typing and clicks show late in the user's browser",
}


def title(rule: Rule) -> str:
    return _TITLE[rule]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def explain(finding: Finding) -> str:
    """One sentence from the finding's own numbers, the likely consequence, then the ranked causes."""
    if finding.rule in _WHAT:
        what, how, unit = _WHAT[finding.rule]
        held = f" for {finding.held_s:.0f} s" if finding.held_s >= 1 else ""
        text = (
            f"{what} has been {how.format(threshold=finding.threshold)}{held} "
            f"(now {finding.value:.1f} {unit}, peak {finding.peak:.1f} {unit}): {_CONSEQUENCE[finding.rule]}."
        )
    else:
        text = _app_sentence(finding)
    if finding.causes:
        text += f" Likely cause: {finding.causes[0]}."
        if len(finding.causes) > 1:
            text += " Also possible: " + "; ".join(finding.causes[1:]) + "."
    return text


def _app_sentence(finding: Finding) -> str:
    process = f"{finding.executable or finding.app_id or 'an unknown process'}"
    if finding.pid:
        process += f" (pid {finding.pid})"
    match finding.rule:
        case Rule.APP_HANG:
            return f"{process} has not answered its window's ping for {finding.value:.0f} s."
        case Rule.APP_CRASH:
            times = f"{finding.value:.0f} times" if finding.value > 1 else "once"
            return f"{process} crashed {times} in the last minute, last by {_signal_name(finding.signal)}."
        case Rule.CRASH_LOOP:
            return (
                f"{finding.app_id or process} crashed {finding.value:.0f} times within "
                f"{finding.held_s:.0f} s, last {process} by {_signal_name(finding.signal)}: it is in a "
                "crash loop, restarting it again will not help."
            )
        case Rule.APP_START_SLOW:
            return (
                f"{process} took {finding.value:.1f} s to show its first window, against a usual "
                f"{finding.threshold:.1f} s for this app across the fleet."
            )
        case _:
            held = f", holding {finding.value:.0f} MiB" if finding.value >= 1 else ""
            return f"The kernel's OOM killer ended {process}{held}: the desktop ran out of memory."


def _memory_holders(sample: Sample | None) -> list[str]:
    found = [c for c in (sample.top_memory if sample else ()) if c.memory_percent >= _MIN_MEMORY_PERCENT]
    return [f"{c.label} holds {c.memory_percent:.0f} % of memory" for c in found]


def _cpu_users(sample: Sample | None) -> list[str]:
    found = [c for c in (sample.top_cpu if sample else ()) if c.cpu_percent >= _MIN_CPU_PERCENT]
    return [f"{c.label} uses {c.cpu_percent:.0f} % of a core" for c in found]


def _busy(consumers: tuple[Consumer, ...], pid: int) -> Consumer | None:
    return next((c for c in consumers if c.pid == pid), None)


def rank_causes(finding: Finding, series: Series) -> tuple[str, ...]:
    """The likely causes of ``finding``, most likely first, from the session's newest evidence (the
    agent names its top processes every few samples: the newest sample that has them)."""
    newest = series.newest
    top = next((s for s in reversed(series.samples) if s.top_cpu or s.top_memory), None)
    causes: list[str]
    match finding.rule:
        case Rule.MEMORY_PRESSURE | Rule.MEMORY_UNUSUAL | Rule.SWAP_THRASH:
            causes = _memory_holders(top) or ["unknown: no single process holds much of the memory"]
        case Rule.CPU_SATURATED | Rule.CPU_UNUSUAL:
            causes = _cpu_users(top) or ["unknown: no single process uses much of the CPU"]
        case Rule.OOM_KILL:
            causes = _memory_holders(top) or ["unknown: the agent's last sample names no large process"]
        case Rule.DESKTOP_UNRESPONSIVE:
            causes = _unresponsive_causes(newest, top)
        case Rule.EXPERIENCE_DEGRADED:
            causes = _experience_causes(series)
        case Rule.LINK_DEGRADED:
            causes = [
                f"the network between the desktop and the cloud, or the cloud's ingest: batches wait "
                f"{finding.value:.0f} ms for their acknowledgement"
            ]
        case Rule.APP_HANG:
            busy = _busy(top.top_cpu if top else (), finding.pid)
            if busy is not None and busy.cpu_percent >= _MIN_CPU_PERCENT:
                causes = [
                    f"{busy.label} is busy ({busy.cpu_percent:.0f} % of a core) and not serving its window"
                ]
            else:
                causes = [
                    f"{finding.executable or finding.app_id} (pid {finding.pid}) is not running: stopped, "
                    "deadlocked or blocked on I/O (it uses no CPU)"
                ]
        case Rule.APP_START_SLOW:
            cpu_short = newest is not None and newest.cpu_percent >= 90
            memory_short = newest is not None and newest.memory_percent >= 90
            causes = (_cpu_users(top) if cpu_short else []) + (_memory_holders(top) if memory_short else [])
            causes = causes or [
                "unknown: the desktop was not short of CPU or memory; the app itself (its disk, network "
                "or profile)"
            ]
        case Rule.APP_CRASH | Rule.CRASH_LOOP:
            causes = [f"a fault in {finding.app_id or finding.executable} ({_signal_name(finding.signal)})"]
            if finding.app_version:
                causes[0] += f", build {finding.app_version}"
        case _:
            causes = ["unknown: the agent does not report which files fill the disk"]
    return tuple(causes[:_MAX_CAUSES])


def _experience_causes(series: Series) -> list[str]:
    """From the client's newest report: a stalled stream, the network's round trip, or the desktop
    drawing late (then its busy processes, as the agent names them)."""
    report = series.experience[-1] if series.experience else None
    if report is None:
        return ["unknown: no report from the thin client to judge by"]
    if report.frozen:
        return [
            f"the display stream stalled: {report.inputs} inputs went to the desktop and no frame came "
            f"back in {report.window_s:.0f} s"
        ]
    rtt, shown = report.rtt_ms or 0.0, report.input_latency_ms or 0.0
    network = (
        f"the network between the user's client and the cloud: a round trip takes {rtt:.0f} ms"
        f" ({report.bytes_down_per_s / 1024:.0f} KiB/s down)"
    )
    if rtt >= shown / 2:
        return [network]
    top = next((s for s in reversed(series.samples) if s.top_cpu), None)
    return [
        f"the desktop draws late: the network answers in {rtt:.0f} ms, an input takes {shown:.0f} ms to show",
        *_cpu_users(top),
    ]


def _unresponsive_causes(sample: Sample | None, top: Sample | None) -> list[str]:
    """Ranked by how strongly the sample points at each: a busy CPU, swapping, memory pressure."""
    if sample is None:
        return ["unknown: no metrics sample to judge by"]
    scored: list[tuple[float, str]] = []
    if sample.cpu_percent >= 90:
        hog = _cpu_users(top)
        scored.append(
            (sample.cpu_percent / 100, hog[0] if hog else f"the CPU is {sample.cpu_percent:.0f} % busy")
        )
    if sample.swap_pages_per_s >= 100:
        scored.append((1.0, f"swapping at {sample.swap_pages_per_s:.0f} pages/s"))
    if sample.memory_percent >= 90:
        holders = _memory_holders(top)
        scored.append(
            (sample.memory_percent / 100 - 0.05, holders[0] if holders else "memory is nearly full")
        )
    if not scored:
        return ["the X server itself: the desktop shows no CPU, memory or swap pressure"]
    return [text for _, text in sorted(scored, key=lambda item: item[0], reverse=True)]


def with_causes(finding: Finding, series: Series) -> Finding:
    return dataclasses.replace(finding, causes=rank_causes(finding, series))
