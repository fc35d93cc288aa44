"""Redaction of a session's fresh events by the user's privacy settings, right before ingest stores them.

The agent already withholds private windows; this enforces the same on the cloud side (an old or
misconfigured agent, exclusions set on the server only, pause). A redacted event keeps its ``seq``
and ``time_unix_nano`` and loses its ``kind``, so the stored seq range and the acks are unchanged and
none of its content is stored. Readers skip events without a kind.

What is redacted:

* while the user is paused: everything except ``SystemMetrics`` and ``AppLifecycle``;
* ``WindowFocus`` marked private by the agent, or of an app / title the user excluded: kept as focus
  with ``private`` set and ``title``/``wm_class`` cleared;
* ``ScreenFrame`` of a private window, or taken while a private window had focus;
* ``TextSnapshot`` of a private window or excluded app; ``ClipboardText`` and ``UrlVisit`` of an
  excluded app or while a private window had focus (``UrlVisit`` also when its title is excluded).

Focus is tracked per session (window id → private) from the WindowFocus events seen, in memory and
bounded; after a restart it is rebuilt from the next focus events.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from opentelemetry import metrics

from cloud_infer.errors import BackendUnavailableError
from cloud_infer.privacy.protocol import PrivacySettings
from cloud_infer.privacy.service import PrivacyService
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.errors import StoreError

meter = metrics.get_meter(__name__)

MAX_SESSIONS = 10_000
MAX_WINDOWS_PER_SESSION = 1_000
_KEPT_WHILE_PAUSED = frozenset({"metrics", "app"})


@dataclass
class _SessionFocus:
    focused_private: bool = False
    # window id → private?, oldest first; bounded so a long session cannot grow it without limit.
    windows: OrderedDict[int, bool] = field(default_factory=OrderedDict)

    def record(self, window_id: int, private: bool) -> None:
        self.focused_private = private
        self.windows[window_id] = private
        self.windows.move_to_end(window_id)
        if len(self.windows) > MAX_WINDOWS_PER_SESSION:
            self.windows.popitem(last=False)

    def is_private(self, window_id: int) -> bool:
        return self.windows.get(window_id, False)


@lru_cache(maxsize=1024)
def _title_regex(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns), re.IGNORECASE)


class _UserRules:
    def __init__(self, settings: PrivacySettings) -> None:
        self.paused = settings.paused
        self._apps = frozenset(settings.excluded_apps)
        self._titles = _title_regex(tuple(settings.excluded_title_patterns))

    def excluded_app(self, app_id: str) -> bool:
        return app_id.lower() in self._apps

    def excluded_title(self, title: str) -> bool:
        return self._titles is not None and self._titles.search(title) is not None


class PrivacyFilter:
    def __init__(self, privacy: PrivacyService) -> None:
        self._privacy = privacy
        self._sessions: OrderedDict[tuple[str, str], _SessionFocus] = OrderedDict()
        self._redacted = meter.create_counter(
            "shadowdesk.privacy.redacted",
            unit="{event}",
            description="Events stored without content because of privacy settings, by kind and reason.",
        )

    async def redact(self, user_id: str, session_id: str, events: Sequence[pb.Event]) -> list[pb.Event]:
        """``events`` with private content removed; the same seqs and times, in the same order.

        Called with a session's events in seq order (ingest holds the session's lock). Raises
        BackendUnavailableError when the user's settings cannot be read.
        """
        try:
            rules = _UserRules(await self._privacy.get(user_id))
        except StoreError as exc:
            raise BackendUnavailableError(f"privacy settings unavailable: {exc}") from exc
        focus = self._session(user_id, session_id)
        return [self._redact_one(event, rules, focus) for event in events]

    def _session(self, user_id: str, session_id: str) -> _SessionFocus:
        key = (user_id, session_id)
        focus = self._sessions.get(key)
        if focus is None:
            focus = self._sessions[key] = _SessionFocus()
            if len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(key)
        return focus

    def _redact_one(self, event: pb.Event, rules: _UserRules, focus: _SessionFocus) -> pb.Event:
        kind = event.WhichOneof("kind")
        reason = ""
        if kind == "window_focus":
            window = event.window_focus
            private = (
                window.private or rules.excluded_app(window.app_id) or rules.excluded_title(window.title)
            )
            focus.record(window.window_id, private)
            if private and (window.title or window.wm_class or not window.private):
                event = _private_focus(event)
                reason = "private_window"
        elif kind == "frame":
            if focus.focused_private or focus.is_private(event.frame.window_id):
                reason = "private_window"
        elif kind == "text":
            text = event.text
            if focus.is_private(text.window_id) or rules.excluded_app(text.app_id):
                reason = "private_window"
        elif kind == "clipboard":
            if focus.focused_private or rules.excluded_app(event.clipboard.app_id):
                reason = "private_window"
        elif kind == "url":
            url = event.url
            if focus.focused_private or rules.excluded_app(url.app_id) or rules.excluded_title(url.title):
                reason = "private_window"
        if rules.paused and kind not in _KEPT_WHILE_PAUSED:
            reason = "paused"
        if not reason:
            return event
        self._redacted.add(1, {"kind": kind or "", "reason": reason})
        if reason == "private_window" and kind == "window_focus":
            return event
        return pb.Event(seq=event.seq, time_unix_nano=event.time_unix_nano)


def _private_focus(event: pb.Event) -> pb.Event:
    private = pb.Event()
    private.CopyFrom(event)
    private.window_focus.private = True
    private.window_focus.ClearField("title")
    private.window_focus.ClearField("wm_class")
    return private
