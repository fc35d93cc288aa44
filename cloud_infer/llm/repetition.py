"""Stops a generation that has fallen into a loop.

Small models answering greedily (temperature 0) often repeat one line or one phrase until the token
limit. ``RepetitionGuard`` watches the text as it streams and ends it when its tail is the same span of
text three times over: the first copy is kept, the rest is dropped, and the caller stops the model.
Spans shorter than ``min_period`` characters are not loops ("| 0 | 0 |", "...", "哈哈哈").
"""

from __future__ import annotations

MIN_PERIOD = 8
MAX_PERIOD = 300
COPIES = 3


def loop_start(text: str, min_period: int = MIN_PERIOD, max_period: int = MAX_PERIOD) -> int | None:
    """Where the repeats begin when ``text`` ends with ``COPIES`` copies of one span, else None."""
    size = len(text)
    for period in range(min_period, min(max_period, size // COPIES) + 1):
        tail = text[size - period :]
        if all(text[size - (k + 1) * period : size - k * period] == tail for k in range(1, COPIES)):
            return size - (COPIES - 1) * period
    return None


class RepetitionGuard:
    """Feed it each delta; it answers the part to pass on, and ``looped`` once the text repeats."""

    def __init__(self) -> None:
        self.text = ""
        self.looped = False

    def feed(self, delta: str) -> str:
        if self.looped:
            return ""
        before = len(self.text)
        self.text += delta
        cut = loop_start(self.text)
        if cut is None:
            return delta
        self.looped = True
        self.text = self.text[:cut]
        return self.text[before:] if cut > before else ""
