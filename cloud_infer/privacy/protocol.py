"""The per-user privacy settings, as stored and as served by ``/v1/privacy``."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shadowdesk_common.patterns import check_patterns

MAX_EXCLUDED_APPS = 200
MAX_TITLE_PATTERNS = 50
MAX_APP_CHARS = 256
# Patterns run against every title the user's agents send: short ones keep that cheap.
MAX_PATTERN_CHARS = 200

AppId = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=MAX_APP_CHARS)
]
TitlePattern = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATTERN_CHARS)]


class PrivacySettings(BaseModel):
    """What one user allows to be captured and kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    paused: bool = Field(False, description="while true, only system metrics and app starts/exits are kept")
    excluded_apps: list[AppId] = Field(
        default_factory=list,
        max_length=MAX_EXCLUDED_APPS,
        description="app ids (WM_CLASS class, case-insensitive) whose windows are private",
    )
    excluded_title_patterns: list[TitlePattern] = Field(
        default_factory=list,
        max_length=MAX_TITLE_PATTERNS,
        description="case-insensitive regular expressions; a window whose title matches is private",
    )
    retention_days: int | None = Field(
        90, ge=1, le=36_500, description="keep events this many days; null: forever"
    )
    retention_max_bytes: int | None = Field(
        None, ge=1, description="keep at most this many bytes; null: no bound"
    )

    @field_validator("excluded_title_patterns")
    @classmethod
    def _compile_patterns(cls, value: list[str]) -> list[str]:
        return check_patterns(value)


def privacy_reductions(old: PrivacySettings, new: PrivacySettings) -> list[str]:
    """What replacing ``old`` by ``new`` would give up: each needs the manage scope.

    Resuming capture, dropping an excluded app or title pattern, and any retention change (shorter
    destroys history, longer keeps more of it) reduce privacy or destroy data; pausing and adding
    exclusions only ever capture less.
    """
    reasons = []
    if old.paused and not new.paused:
        reasons.append("resume capture")
    if set(old.excluded_apps) - set(new.excluded_apps):
        reasons.append("stop excluding an app")
    if set(old.excluded_title_patterns) - set(new.excluded_title_patterns):
        reasons.append("stop excluding a title pattern")
    if (old.retention_days, old.retention_max_bytes) != (new.retention_days, new.retention_max_bytes):
        reasons.append("change retention")
    return reasons
