"""Redaction of a session's fresh events by the user's privacy settings, right before ingest stores them.

The agent already withholds private windows; this enforces the same on the cloud side (an old or
misconfigured agent, exclusions set on the server only, pause). A redacted event keeps its ``seq``
and ``time_unix_nano`` and loses its ``kind``, so the stored seq range and the acks are unchanged and
none of its content is stored. Readers skip events without a kind.

What is redacted:

* while the user is paused: everything except the ops events (``SystemMetrics``, ``AppLifecycle``,
  ``AppFault``, ``LogonPhase``, ``SessionInfo``: process names and numbers, nothing seen on screen)
  and the agent's reports on commands (``CommandStarted``, ``CommandResult`` without what it
  ``observed``): a command still completes, and nothing seen on screen is kept;
* ``WindowFocus`` marked private by the agent, or of an app / title the user excluded: kept as focus
  with ``private`` set and ``title``/``wm_class`` cleared;
* ``ScreenFrame`` of a private window, or taken while a private window had focus;
* ``TextSnapshot`` of a private window or excluded app; ``ClipboardText`` and ``UrlVisit`` of an
  excluded app or while a private window had focus (``UrlVisit`` also when its title is excluded);
* ``RecordedAction`` (what the user did while recording a macro) in or of a private window, of an
  excluded app or title, or while a private window had focus (the STARTED/STOPPED markers, which
  carry no content, are kept so a recording still ends; while paused they go like everything else).

Which windows are private, and whether one has focus, is per session state that outlives the
process: it is saved in the user's space (``privacy/sessions/<session>.json``) whenever it changes,
before the batch that changed it is stored. A resumed session whose state cannot be found fails
closed: frames, text, clipboard and URLs are withheld until the next focus event says what has focus.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from opentelemetry import metrics
from pydantic import BaseModel

from cloud_infer.errors import BackendUnavailableError
from cloud_infer.privacy.protocol import PrivacySettings
from cloud_infer.privacy.service import PrivacyService
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.errors import ObjectNotFoundError, StoreError
from recall_store.naming import validate_key
from recall_store.store import ObjectStore
from shadowdesk_common.patterns import TitleMatcher

meter = metrics.get_meter(__name__)

MAX_SESSIONS = 10_000
MAX_PRIVATE_WINDOWS = 1_000
_KEPT_WHILE_PAUSED = frozenset(
    {"metrics", "app", "app_fault", "logon", "session_info", "command_started", "command_result"}
)
_CONTENT = frozenset({"frame", "text", "clipboard", "url", "recorded"})


def focus_state_key(session_id: str) -> str:
    return validate_key(f"privacy/sessions/{session_id}.json")


class _SavedFocus(BaseModel):
    focused_private: bool
    private_windows: list[int]


@dataclass
class _SessionFocus:
    # None: unknown (a resumed session whose saved state is missing): content is withheld.
    focused_private: bool | None = False
    # Private window ids, oldest first; bounded so a long session cannot grow it without limit.
    private: OrderedDict[int, None] = field(default_factory=OrderedDict)
    dirty: bool = False

    def record(self, window_id: int, private: bool) -> None:
        was_private = window_id in self.private
        if private:
            self.private[window_id] = None
            self.private.move_to_end(window_id)
            if len(self.private) > MAX_PRIVATE_WINDOWS:
                self.private.popitem(last=False)
        else:
            self.private.pop(window_id, None)
        self.dirty |= self.focused_private != private or was_private != private
        self.focused_private = private

    def is_private(self, window_id: int) -> bool:
        return self.focused_private is None or window_id in self.private

    def to_json(self) -> bytes:
        saved = _SavedFocus(focused_private=bool(self.focused_private), private_windows=list(self.private))
        return saved.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes) -> _SessionFocus:
        saved = _SavedFocus.model_validate_json(data)
        return cls(saved.focused_private, OrderedDict.fromkeys(saved.private_windows))


@lru_cache(maxsize=1024)
def _title_matcher(patterns: tuple[str, ...]) -> TitleMatcher:
    return TitleMatcher(patterns)


class _UserRules:
    def __init__(self, settings: PrivacySettings) -> None:
        self.paused = settings.paused
        self._apps = frozenset(settings.excluded_apps)
        self._titles = _title_matcher(tuple(settings.excluded_title_patterns))

    def excluded_app(self, app_id: str) -> bool:
        return app_id.lower() in self._apps

    def excluded_title(self, title: str) -> bool:
        return self._titles.search(title)


class PrivacyFilter:
    def __init__(self, privacy: PrivacyService, store: ObjectStore) -> None:
        self._privacy = privacy
        self._store = store
        self._sessions: OrderedDict[tuple[str, str], _SessionFocus] = OrderedDict()
        self._redacted = meter.create_counter(
            "shadowdesk.privacy.redacted",
            unit="{event}",
            description="Events stored without content because of privacy settings, by kind and reason.",
        )

    async def redact(
        self, user_id: str, session_id: str, events: Sequence[pb.Event], resumed: bool
    ) -> list[pb.Event]:
        """``events`` with private content removed; the same seqs and times, in the same order.

        Called with a session's events in seq order (ingest holds the session's lock); ``resumed``
        says the session already has stored events. Saves the session's focus state when it changed.
        Raises BackendUnavailableError when the settings or the state cannot be read or saved.
        """
        try:
            rules = _UserRules(await self._privacy.get(user_id))
            focus = await self._session(user_id, session_id, resumed)
            redacted = [self._redact_one(event, rules, focus) for event in events]
            if focus.dirty:
                state = focus.to_json()
                await self._store.put(user_id, focus_state_key(session_id), state, "application/json")
                focus.dirty = False
        except StoreError as exc:
            self._sessions.pop((user_id, session_id), None)  # re-read: the saved state is what counts
            raise BackendUnavailableError(f"privacy state unavailable: {exc}") from exc
        return redacted

    async def _session(self, user_id: str, session_id: str, resumed: bool) -> _SessionFocus:
        key = (user_id, session_id)
        focus = self._sessions.get(key)
        if focus is None:
            try:
                focus = _SessionFocus.from_json(await self._store.get(user_id, focus_state_key(session_id)))
            except ObjectNotFoundError:
                focus = _SessionFocus(focused_private=None if resumed else False)
            self._sessions[key] = focus
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
        elif kind in _CONTENT and focus.focused_private is None:
            reason = "unknown_focus"
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
        elif kind == "recorded" and _recorded_private(event.recorded, rules, focus):
            reason = "private_window"
        if rules.paused and kind not in _KEPT_WHILE_PAUSED:
            reason = "paused"
        if rules.paused and kind == "command_result" and event.command_result.observed:
            self._redacted.add(1, {"kind": kind, "reason": "paused"})
            return _without_observed(event)
        if not reason:
            return event
        self._redacted.add(1, {"kind": kind or "", "reason": reason})
        if reason == "private_window" and kind == "window_focus":
            return event
        return pb.Event(seq=event.seq, time_unix_nano=event.time_unix_nano)


def _recorded_private(action: pb.RecordedAction, rules: _UserRules, focus: _SessionFocus) -> bool:
    """A recorded action is screen content: private while a private window has focus, or of one."""
    if action.kind in (pb.RecordedAction.KIND_STARTED, pb.RecordedAction.KIND_STOPPED):
        return False  # markers without content: a recording still ends
    windows = (action.window, action.element.window)
    return (
        bool(focus.focused_private)
        or any(w.window_id and focus.is_private(w.window_id) for w in windows)
        or any(rules.excluded_app(w.app_id) for w in windows if w.app_id)
        or rules.excluded_title(action.window_title)
        or any(rules.excluded_title(w.title_contains) for w in windows if w.title_contains)
    )


def _private_focus(event: pb.Event) -> pb.Event:
    private = pb.Event()
    private.CopyFrom(event)
    private.window_focus.private = True
    private.window_focus.ClearField("title")
    private.window_focus.ClearField("wm_class")
    return private


def _without_observed(event: pb.Event) -> pb.Event:
    kept = pb.Event()
    kept.CopyFrom(event)
    kept.command_result.ClearField("observed")
    return kept
