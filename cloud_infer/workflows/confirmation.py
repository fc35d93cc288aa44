"""Checks that the page after a recording's final click shows back the values the user typed.

A confirmation page (a claim's, an order's) shows what the app stored. The compiler turns each value the
user typed, chose or pasted that the page after the final click showed into a ``text_in_window`` check
on that click, so a replay proves the app kept every value: a field the app silently dropped or changed
is a failed check (the run halts and asks), never a complete run. Money and dates are compared as the
amount or the day (``Check.compare_as``), since apps store them normalised (``1,280.00`` is shown
``1280.00``, ``2026年11月23日`` is shown ``2026-11-23``); everything else as the text typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import re2

from cloud_infer.workflows.program import Check, Input, WindowTarget
from cloud_infer.workflows.values import CompareAs, rendering_pattern

# Shorter values (a single digit, "Y") are found anywhere: their check would prove nothing.
_MIN_TEXT_CHARS = 2


@dataclass(frozen=True, slots=True)
class TypedValue:
    """A value a step typed or chose, where it comes from in a run, and what it was when recorded."""

    input: Input
    recorded: str
    compare_as: CompareAs


def shown_value_checks(typed: Sequence[TypedValue], page_after: str, window: WindowTarget) -> list[Check]:
    """A check per typed value that ``page_after`` (the window's text after the final click) shows, in
    the order typed; a value shown twice in the recording (typed into two fields) is checked once."""
    lines = page_after.splitlines()
    checks: list[Check] = []
    seen: set[str] = set()
    for value in typed:
        text = value.recorded.strip()
        key = f"{value.compare_as}:{text}"
        if key in seen or not _shown(text, value.compare_as, lines):
            continue
        seen.add(key)
        checks.append(
            Check(kind="text_in_window", window=window, equals=value.input, compare_as=value.compare_as)
        )
    return checks


def _shown(text: str, compare_as: CompareAs, lines: Sequence[str]) -> bool:
    pattern = rendering_pattern(text, compare_as)
    if pattern:
        compiled = re2.compile(pattern)
        return any(compiled.search(line) for line in lines)
    return len(text) >= _MIN_TEXT_CHARS and any(text in line for line in lines)
