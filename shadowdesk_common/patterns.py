"""User-supplied title patterns, shared by the agent's and the server's privacy rules, matched by RE2.

Python's backtracking ``re`` lets one pattern such as ``(a+)+$`` take seconds on one title, and the
server matches every title of every batch: one tenant's pattern would stall everyone. RE2 runs in
time linear in the title's length and refuses what it cannot run that way (backreferences,
lookaround, huge counted repetitions), so a refused pattern is reported to whoever set it.
"""

from __future__ import annotations

from collections.abc import Sequence

import re2

# Memory RE2 may spend on one compiled rule set; a set needing more is refused, not truncated.
_MAX_PROGRAM_BYTES = 8 << 20


def _options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # RE2 would print refusals to stderr; they become ValueError instead
    options.max_mem = _MAX_PROGRAM_BYTES
    return options


def _compile(pattern: str) -> re2._Regexp:
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(
            f"invalid regular expression {pattern!r} (RE2 syntax, no backreferences or lookaround): {reason}"
        ) from None


class TitleMatcher:
    """Case-insensitive search of any of ``patterns`` in a title, in linear time. Immutable, thread-safe."""

    def __init__(self, patterns: Sequence[str]) -> None:
        # One alternation: a title is scanned once, not once per pattern.
        self._regex = _compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    def search(self, title: str) -> bool:
        return self._regex is not None and self._regex.search(title) is not None


def check_patterns(patterns: list[str]) -> list[str]:
    """Return ``patterns`` if RE2 compiles each one and all together, else raise ValueError naming why."""
    for pattern in patterns:
        _compile(pattern)
    TitleMatcher(patterns)
    return patterns
