"""Deterministic explanations of the threshold and baseline rules: what held, for how long, and the
evidence it rests on, so an incident is explained without a model."""

from __future__ import annotations

from cloud_infer.diagnostics.rules import Finding, Rule

_WHAT = {
    Rule.MEMORY_PRESSURE: ("Memory in use", "above {threshold:g} %"),
    Rule.CPU_SATURATED: ("CPU busy", "above {threshold:g} %"),
    Rule.DISK_FULL: ("Disk in use", "at or above {threshold:g} %"),
    Rule.CPU_UNUSUAL: ("CPU busy", "far above this session's usual {threshold:g} %"),
    Rule.MEMORY_UNUSUAL: ("Memory in use", "far above this session's usual {threshold:g} %"),
}
_CAUSE = {
    Rule.MEMORY_PRESSURE: "the desktop is close to running out of memory: apps slow down, then the kernel "
    "kills the largest process",
    Rule.CPU_SATURATED: "every core is busy: the desktop answers input late",
    Rule.DISK_FULL: "the disk is nearly full: saving files and app caches will fail",
    Rule.CPU_UNUSUAL: "something started using much more CPU than this session usually does",
    Rule.MEMORY_UNUSUAL: "something started holding much more memory than this session usually does",
}


def title(rule: Rule) -> str:
    return {
        Rule.MEMORY_PRESSURE: "Memory pressure",
        Rule.CPU_SATURATED: "CPU saturated",
        Rule.DISK_FULL: "Disk almost full",
        Rule.CPU_UNUSUAL: "Unusual CPU use",
        Rule.MEMORY_UNUSUAL: "Unusual memory use",
    }[rule]


def explain(finding: Finding) -> str:
    """One sentence from the finding's own numbers, then the likely consequence."""
    what, how = _WHAT[finding.rule]
    held = f" for {finding.held_s:.0f} s" if finding.held_s >= 1 else ""
    return (
        f"{what} has been {how.format(threshold=finding.threshold)}{held} "
        f"(now {finding.value:.1f} %, peak {finding.peak:.1f} %): {_CAUSE[finding.rule]}."
    )
