"""Settings of the downlink (cloud → agent commands), from ``SHADOWDESK_COMMANDS_*`` variables.

Precedence: constructor argument, then environment, then the default below.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SHADOWDESK_COMMANDS_"
DAY_S = 86_400.0


class CommandSettings(BaseSettings):
    """How long commands wait for their agent, and how much of them each session's outbox keeps."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    default_deadline_s: float = Field(
        default=300.0, gt=0, description="Deadline of a command issued without one, from its issue time."
    )
    max_deadline_s: float = Field(
        default=7 * DAY_S, gt=0, description="Latest deadline a command may have, from its issue time."
    )
    max_pending: int = Field(
        default=100, ge=1, description="Commands one session may have waiting for a result; more are refused."
    )
    result_grace_s: float = Field(
        default=3600.0,
        ge=0,
        description="A delivered command still without a result this long after its deadline is recorded "
        "as expired.",
    )
    history_s: float = Field(
        default=7 * DAY_S, ge=0, description="How long a finished command stays readable in its outbox."
    )
    max_history: int = Field(
        default=200, ge=0, description="Finished commands kept per session (the oldest go first)."
    )
