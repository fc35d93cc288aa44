"""HTTP/websocket models of Recall (search, moments, erasure, ask)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class Fragment(BaseModel):
    text: str
    hit: bool = Field(description="True for a part of the text that matched the query.")


class Box(BaseModel):
    """A line of text on the frame, in frame pixels."""

    x0: int
    y0: int
    x1: int
    y1: int
    text: str
    hit: bool = False


DateReading = Literal["both", "seen", "about"]


class ParsedQuery(BaseModel):
    text: str = Field(description="The query with date and time phrases removed.")
    terms: list[str] = Field(description="Words searched for (Chinese segmented).")
    start: datetime | None = None
    end: datetime | None = None
    phrases: list[str] = Field(default_factory=list, description="Date/time phrases understood.")
    dates: DateReading | None = Field(
        default=None,
        description="How the date was read: both (seen then, or about that date: ranked, never a "
        "filter), seen (a filter on when it was on screen), about (the content's own dates); null "
        "without a date.",
    )
    rewritten: str | None = Field(
        default=None, description="Keywords the LLM suggested when the query itself found nothing."
    )


class SearchHit(BaseModel):
    moment_id: str
    session_id: str
    time: datetime = Field(description="When the best matching text was on screen.")
    start: datetime = Field(description="When the moment (this window in focus) began.")
    app_id: str
    title: str
    url: str
    source: str = Field(description="screen (OCR), accessibility, title, url or clipboard.")
    snippet: list[Fragment]
    frame_url: str | None = Field(description="The frame the text was read from, or null.")
    thumb_url: str | None = None
    frame_width: int = 0
    frame_height: int = 0
    boxes: list[Box] = Field(default_factory=list, description="Lines of the frame that matched.")
    score: float


class SearchResponse(BaseModel):
    query: ParsedQuery
    hits: list[SearchHit]
    took_ms: float


class MomentRow(BaseModel):
    id: str
    time: datetime
    source: str
    text: str
    frame_url: str | None = None
    frame_width: int = 0
    frame_height: int = 0
    boxes: list[Box] = Field(default_factory=list)


class MomentResponse(BaseModel):
    moment_id: str
    session_id: str
    app_id: str
    title: str
    url: str
    start: datetime
    end: datetime
    rows: list[MomentRow]


class EraseRequest(BaseModel):
    """Either a time range, or ``everything``."""

    start: datetime | None = None
    end: datetime | None = None
    everything: bool = False

    @model_validator(mode="after")
    def _range_or_everything(self) -> EraseRequest:
        if self.everything == (self.start is not None or self.end is not None):
            raise ValueError("give start and end, or everything=true")
        if not self.everything and (self.start is None or self.end is None or self.start >= self.end):
            raise ValueError("start and end must both be given, with start before end")
        return self


class EraseResponse(BaseModel):
    deleted_objects: int
    deleted_rows: int


class Citation(BaseModel):
    n: int = Field(description="The [n] marker used in the answer.")
    moment_id: str
    time: datetime
    app_id: str
    title: str
    frame_url: str | None = None
    excerpt: list[Fragment] = Field(
        default_factory=list, description="The cited moment's matching line; hit parts matched the question."
    )
