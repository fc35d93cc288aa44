"""The JSON shapes of the recording and macro API (``/v1/workflows``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloud_infer.api_errors import ErrorResponse
from cloud_infer.workflows.errors import Problem
from cloud_infer.workflows.macros import Macro, MacroSummary
from cloud_infer.workflows.recording import Recording, RecordingStatus

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_NS_PER_S = 1_000_000_000


class StartRecordingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str = Field(
        pattern=ID_PATTERN, description="One of your desktop sessions (its agent records)."
    )


class StopRecordingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=256, description="The macro's name (default: the date).")


class RecordingView(BaseModel):
    recording_id: str
    session_id: str
    status: RecordingStatus
    created_at: datetime
    actions: int = Field(description="Recorded actions collected so far.")
    macro_id: str | None
    version: int | None
    error: str


class MacroView(BaseModel):
    macro_id: str
    version: int
    versions: list[int]
    document: str = Field(description="The YAML document of this version, as saved.")
    program: dict[str, Any] = Field(description="The document as a program (JSON).")


class StoppedView(MacroView):
    recording_id: str


class MacroListItem(BaseModel):
    macro_id: str
    name: str
    version: int
    updated_at: datetime
    recording_id: str | None


class MacroInvalidResponse(ErrorResponse):
    """A document that is not a valid program: every problem, for the editor to show inline."""

    errors: list[Problem] = Field(default_factory=list, description="Empty when the request itself is wrong.")


def recording_view(recording: Recording) -> RecordingView:
    return RecordingView(
        recording_id=recording.recording_id,
        session_id=recording.session_id,
        status=recording.status,
        created_at=datetime.fromtimestamp(recording.created_ns / _NS_PER_S, UTC),
        actions=len(recording.actions),
        macro_id=recording.macro_id or None,
        version=recording.version or None,
        error=recording.error,
    )


def macro_view(macro: Macro) -> MacroView:
    return MacroView(
        macro_id=macro.macro_id,
        version=macro.version,
        versions=macro.versions,
        document=macro.document,
        program=macro.program.model_dump(mode="json", exclude_defaults=True),
    )


def list_item(summary: MacroSummary) -> MacroListItem:
    return MacroListItem(
        macro_id=summary.macro_id,
        name=summary.name,
        version=summary.version,
        updated_at=datetime.fromtimestamp(summary.updated_ns / _NS_PER_S, UTC),
        recording_id=summary.recording_id or None,
    )
