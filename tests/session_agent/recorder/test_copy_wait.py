"""A recording on a busy desktop: a copy's text is the one the app put on the clipboard, even when the app
is slow to put it there, and what the user did before the stop is taken though the recording lagged.

The clipboard is read through a seam (``Recording._clipboard``) that answers as a busy desktop would:
the old text (or none) for a while after ctrl+c, then the new one. Nothing is opened: a recording
connects to X and AT-SPI only when it starts.
"""

from __future__ import annotations

import time

import pytest

from session_agent.privacy import PrivacyRules
from session_agent.recorder import session
from session_agent.recorder.inputs import Input
from session_agent.recorder.session import Recording


def slow_clipboard(recording: Recording, answers: list[tuple[float, str]]) -> None:
    """The clipboard holds each text from its time (seconds after now) on."""
    start = time.monotonic()

    def read() -> str:
        elapsed = time.monotonic() - start
        return [text for at, text in answers if at <= elapsed][-1]

    recording._clipboard = read  # type: ignore[method-assign]


@pytest.fixture
def recording() -> Recording:
    return Recording(
        "rec-copy",
        display=":0",
        session_bus="",
        privacy=PrivacyRules(),
        emit=lambda event: None,
        max_s=60,
        wait_min_s=1.0,
        clipboard_max_chars=1000,
    )


def test_a_copy_waits_for_the_app_to_take_the_clipboard(recording: Recording) -> None:
    # Nothing on the clipboard yet (the first copy), then the line, 0.7 s after the key.
    slow_clipboard(recording, [(0.0, ""), (0.7, "First line")])
    assert recording._copied_text() == "First line"
    # The next copy: the last line is still there for a while, then the new one.
    slow_clipboard(recording, [(0.0, "First line"), (0.6, "第二行")])
    assert recording._copied_text() == "第二行"


def test_the_same_text_copied_again_is_taken_after_the_longest_wait(recording: Recording) -> None:
    slow_clipboard(recording, [(0.0, "Same line")])
    assert recording._copied_text() == "Same line"
    started = time.monotonic()
    assert recording._copied_text() == "Same line"
    assert session._COPY_WAIT_S <= time.monotonic() - started < session._COPY_WAIT_S + 1.0


def test_what_was_queued_before_the_stop_is_still_taken_in_order(recording: Recording) -> None:
    taken: list[tuple[object, bool]] = []
    recording._step = lambda item, *, look=True: taken.append((item, look))  # type: ignore[method-assign]
    first, second = Input(), Input()
    recording._queue.put(first)
    recording._queue.put(second)
    recording._drain()
    # Without looking at the windows again: they are as the user left them, not as they were then.
    assert taken == [(first, False), (second, False)]
