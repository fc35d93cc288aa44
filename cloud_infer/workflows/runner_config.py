"""Settings of the workflow runner, from ``SHADOWDESK_RUNNER_*`` variables.

Precedence: constructor argument, then environment, then the default below.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SHADOWDESK_RUNNER_"


class RunnerSettings(BaseSettings):
    """How the runner replays a macro: backoff between tries, frames in traces, and its limits."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    frames: Literal["off", "after", "before_after"] = Field(
        default="before_after",
        description="Frames each step's trace keeps: none, the screen after the step, or before and after "
        "(each frame is one TakeFrame command and one stored image; a failed check always takes one).",
    )
    backoff_base_s: float = Field(
        default=0.5, gt=0, description="Wait before the first retry of a step; doubled for each next one."
    )
    backoff_max_s: float = Field(default=8.0, gt=0, description="Longest wait between two tries of a step.")
    command_margin_s: float = Field(
        default=20.0,
        gt=0,
        description="How much longer than a step's own timeout the runner waits for the agent's result of "
        "one command (delivery and the stream's round trip).",
    )
    max_active_runs: int = Field(
        default=8, ge=1, description="Runs one user may have running or waiting at once (one per session)."
    )
    ocr_threads: int = Field(default=1, ge=1, description="Threads of the OCR used when accessibility fails.")
