"""Which windows are private: their title, class and content never leave the desktop.

A window is private when its app is excluded (``exclude_apps``, matched case-insensitively against
the app id and each dot-separated part of WM_CLASS) or its title matches one of ``exclude_title_patterns`` or
``private_window_patterns`` (case-insensitive RE2 regular expressions, searched anywhere in the title,
in linear time: ``shadowdesk_common.patterns``).
Sensors ask ``PrivacyRules.is_private`` from their own threads; the rules are immutable, so that is
thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterable

from session_agent.config import DEFAULT_EXCLUDED_APPS, DEFAULT_PRIVATE_WINDOW_PATTERNS, AgentSettings
from shadowdesk_common.patterns import TitleMatcher


class PrivacyRules:
    def __init__(
        self,
        exclude_apps: Iterable[str] = DEFAULT_EXCLUDED_APPS,
        title_patterns: Iterable[str] = DEFAULT_PRIVATE_WINDOW_PATTERNS,
    ) -> None:
        self._apps = frozenset(app.lower() for app in exclude_apps)
        self._titles = TitleMatcher(list(title_patterns))

    @classmethod
    def from_settings(cls, settings: AgentSettings) -> PrivacyRules:
        return cls(
            settings.exclude_apps, [*settings.exclude_title_patterns, *settings.private_window_patterns]
        )

    def is_private(self, app_id: str, wm_class: str, title: str) -> bool:
        """Whether a window of ``app_id`` (WM_CLASS ``instance.class``) titled ``title`` is private."""
        # Any dot-separated part of WM_CLASS: instance and class names may themselves contain dots.
        names = {app_id.lower(), *wm_class.lower().split(".")}
        if names & self._apps:
            return True
        return self._titles.search(title)
