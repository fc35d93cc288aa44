"""Models of the timeline API and parsing of its time parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from cloud_infer.errors import InvalidMessageError

MAX_WINDOW = timedelta(days=31)
DEFAULT_WINDOW = timedelta(hours=24)
# Bounds of one response, so its size does not grow with the history (a 31-day window can hold
# millions of events): the earliest spans, and a sample of each span's frames.
MAX_SPANS = 5000
MAX_FRAMES_PER_SPAN = 200
_NS_PER_S = 1_000_000_000


class FrameRef(BaseModel):
    """A screen frame shown during a span; ``url`` serves the image, ``thumbnail_url`` a small copy."""

    time: datetime
    url: str
    thumbnail_url: str
    width: int
    height: int


class WindowSpan(BaseModel):
    """One stretch of time during which a window had the focus on a desktop session."""

    session_id: str
    app_id: str
    title: str
    window_id: int
    start: datetime
    end: datetime
    frames: list[FrameRef] = Field(
        default_factory=list,
        description=(
            f"at most {MAX_FRAMES_PER_SPAN}: past that the first, the last and evenly spaced ones between"
        ),
    )


class TimelineResponse(BaseModel):
    start: datetime
    end: datetime
    spans: list[WindowSpan]
    truncated: bool = Field(
        default=False,
        description=(
            f"the window has more than {MAX_SPANS} spans: these are the earliest; ask again from the last"
            " one's start for the rest"
        ),
    )


def parse_instant(name: str, value: str) -> datetime:
    """ISO-8601 (naive means UTC) or epoch seconds, as an aware UTC datetime."""
    try:
        instant = datetime.fromtimestamp(float(value), tz=UTC)
    except ValueError:
        try:
            instant = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidMessageError(
                f"{name} must be ISO-8601 (2025-01-31T09:00:00Z) or epoch seconds, got {value!r}"
            ) from exc
    except OverflowError as exc:
        raise InvalidMessageError(f"{name} is out of range: {value!r}") from exc
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)


def parse_window(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """The [start, end) window of a request; start before end and at most MAX_WINDOW long.

    Without ``end`` the window ends now; without ``start`` it begins DEFAULT_WINDOW before its end.
    """
    window_end = parse_instant("end", end) if end is not None else datetime.now(UTC)
    window_start = parse_instant("start", start) if start is not None else window_end - DEFAULT_WINDOW
    window = window_start, window_end
    if window[0] >= window[1]:
        raise InvalidMessageError("start must be before end")
    if window[1] - window[0] > MAX_WINDOW:
        raise InvalidMessageError(f"the window may span at most {MAX_WINDOW.days} days")
    return window


def to_ns(instant: datetime) -> int:
    return int(instant.timestamp()) * _NS_PER_S + instant.microsecond * 1000


def from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // _NS_PER_S, tz=UTC) + timedelta(microseconds=ns % _NS_PER_S // 1000)
