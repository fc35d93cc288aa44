"""The desktop API's JSON shapes."""

from __future__ import annotations

from pydantic import BaseModel, Field


class DesktopSessionList(BaseModel):
    """``GET /v1/desktop/sessions``: the caller's sessions whose desktop the thin client can show."""

    sessions: list[str] = Field(description="Session ids, sorted.")
