"""Models of the assist API and its websocket messages."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Action = Literal["summarize", "translate", "polish", "explain", "ask"]
MAX_TEXT_CHARS = 8000


class AssistContext(BaseModel):
    """The user's current window and its text, from their most recent moment."""

    available: bool = Field(description="False when nothing was seen lately (or Recall is off)")
    moment_id: str | None = None
    app_id: str = ""
    title: str = ""
    url: str = ""
    time: datetime | None = None
    selection: str = Field("", description="Latest text selected or copied in this window")
    visible_text: str = Field("", description="Accessibility text of the window, else its screen text")


class RunMessage(BaseModel):
    """``{"type": "run"}``: start an action; ``text`` replaces the context's text when given."""

    type: Literal["run"]
    id: str = Field(min_length=1, max_length=64)
    action: Action
    text: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    question: str | None = Field(None, max_length=500)
