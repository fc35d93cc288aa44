"""Recording by demonstration: while the cloud has a recording on (Command ``recording``), the agent turns
what the user does into ``RecordedAction`` events in its normal event stream — focus changes, clicks with
the accessible element under the pointer, the final values of edited fields read back through
accessibility (never keystrokes; a password field only as a secret), copies and pastes, named key
commands and waits. Nothing of this runs while no recording is on. See docs/agent.md ("Recording").

``Recorder`` (``service``) takes the start/stop command; ``Recording`` (``session``) is one recording's
thread; ``inputs`` observes the pointer and key commands (X RECORD), ``events`` the accessibility
events.
"""

from __future__ import annotations

from session_agent.recorder.inputs import command_name
from session_agent.recorder.service import Recorder
from session_agent.recorder.session import Recording

__all__ = ["Recorder", "Recording", "command_name"]
