"""Validation of user-supplied regular expressions, shared by the agent's and the server's privacy rules."""

from __future__ import annotations

import re


def check_patterns(patterns: list[str]) -> list[str]:
    """Return ``patterns`` if each compiles, else raise ValueError naming the first that does not."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return patterns
