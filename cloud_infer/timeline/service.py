"""Builds window spans from the event log and serves frame images of one user."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from datetime import datetime

from cloud_infer.errors import InvalidMessageError
from cloud_infer.frames import DEFAULT_MAX_FRAME_PIXELS, decode_frame
from cloud_infer.recall.config import usable_cores
from cloud_infer.tenancy.fair_pool import FairPool, Priority
from cloud_infer.timeline.protocol import (
    MAX_FRAMES_PER_SPAN,
    MAX_SPANS,
    FrameRef,
    TimelineResponse,
    WindowSpan,
    from_ns,
    to_ns,
)
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.errors import InvalidNameError
from recall_store.event_log import FRAME_CONTENT_TYPES, FRAME_NAME_RE, EventLog
from recall_store.naming import validate_id

THUMBNAIL_SIZE = (320, 320)


class TimelineService:
    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log
        # Decoding frames is CPU: users take turns on at most half the cores, so one user's flood of
        # thumbnails leaves the rest to everyone's searches (measured: noisy-neighbour bench, frames row).
        self._thumbnails = FairPool("thumbnails", workers=max(1, usable_cores() // 2))

    async def timeline(self, user_id: str, start: datetime, end: datetime) -> TimelineResponse:
        """Focus spans of all the user's sessions in [start, end), each with the frames taken during it.

        A span runs from its WindowFocus event to the next one of the same session, or else to the
        session's last event in the window; frames before a session's first focus event are left out.

        The window is read one segment at a time and only spans are held, never its events: at most
        MAX_SPANS come back (the earliest, with ``truncated`` set when there are more), each with at
        most MAX_FRAMES_PER_SPAN frames (see ``_FrameSample``).
        """
        spans = _EarliestSpans(MAX_SPANS)
        session: _SessionSpans | None = None
        segments = self._log.iter_segments(user_id, to_ns(start), to_ns(end))
        async with contextlib.aclosing(segments):
            async for segment in segments:
                if session is None or session.session_id != segment.session_id:
                    spans.add(session.close() if session else None)
                    session = _SessionSpans(segment.session_id)
                for event in segment.events:
                    spans.add(session.add(event))
        spans.add(session.close() if session else None)
        kept, truncated = spans.result()
        return TimelineResponse(start=start, end=end, spans=kept, truncated=truncated)

    async def frame(self, user_id: str, session_id: str, name: str, thumbnail: bool) -> tuple[bytes, str]:
        """The image and its content type of one of the user's frames, optionally downscaled."""
        try:
            validate_id("session id", session_id)
        except InvalidNameError as exc:
            raise InvalidMessageError(str(exc)) from exc
        match = FRAME_NAME_RE.fullmatch(name)
        if match is None:
            raise InvalidMessageError(f"frame name must look like 000000000042.webp, got {name!r}")
        data = await self._log.frame(user_id, f"frames/{session_id}/{name}")
        if thumbnail:
            return await self._thumbnails.run(user_id, Priority.INTERACTIVE, _thumbnail, data), "image/jpeg"
        return data, FRAME_CONTENT_TYPES[match.group(1)]


_Frame = tuple[int, str, int, int]  # time (ns), stored key, width, height


class _FrameSample:
    """At most ``limit`` of a span's frames however many it has: all of them, or else the first,
    the last and evenly spaced ones between (in capture order).

    The first shows the window as it got the focus and the last as it was left, which is what a
    span's thumbnail and its end need; even spacing covers the whole span rather than its start.
    Frames arrive one by one with the total unknown, so every ``stride``-th one is kept and the
    stride doubles (halving the sample) whenever the sample passes ``2 * limit``; the end picks
    ``limit`` evenly from that. Memory: ``2 * limit + 1`` frames per open span.
    """

    def __init__(self, limit: int) -> None:
        assert limit >= 2, "the first and the last frame must both fit"
        self._limit = limit
        self._kept: list[_Frame] = []
        self._stride = 1
        self._count = 0
        self._last: _Frame | None = None

    def add(self, frame: _Frame) -> None:
        if self._count % self._stride == 0:
            self._kept.append(frame)
            if len(self._kept) > 2 * self._limit:
                del self._kept[1::2]
                self._stride *= 2
        self._count += 1
        self._last = frame

    def frames(self) -> list[_Frame]:
        kept = self._kept
        if self._last is not None and self._last is not kept[-1]:
            kept = [*kept, self._last]
        if len(kept) <= self._limit:
            return kept
        step = (len(kept) - 1) / (self._limit - 1)
        return [kept[round(i * step)] for i in range(self._limit)]


@dataclass
class _OpenSpan:
    focus: pb.WindowFocus
    start_ns: int
    end_ns: int
    frames: _FrameSample = field(default_factory=lambda: _FrameSample(MAX_FRAMES_PER_SPAN))


class _SessionSpans:
    """The spans of one session, built from its events in seq order; only the open span is held."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._open: _OpenSpan | None = None

    def add(self, event: pb.Event) -> WindowSpan | None:
        """Take the next event; return the span it closes, if it starts a new one."""
        kind = event.WhichOneof("kind")
        if kind is None:
            return None  # redacted by privacy settings: nothing of it may show, not even its time
        at = event.time_unix_nano
        if self._open is not None:
            self._open.end_ns = max(self._open.end_ns, at)
        if kind == "window_focus":
            closed = self.close()
            self._open = _OpenSpan(event.window_focus, at, at)
            return closed
        if kind == "frame" and self._open is not None and event.frame.stored_key:
            self._open.frames.add((at, event.frame.stored_key, event.frame.width, event.frame.height))
        return None

    def close(self) -> WindowSpan | None:
        """The open span, finished; None if there is none."""
        span, self._open = self._open, None
        if span is None:
            return None
        frames = []
        for at, key, width, height in span.frames.frames():
            url = "/v1/" + key
            frames.append(
                FrameRef(
                    time=from_ns(at), url=url, thumbnail_url=url + "?thumb=1", width=width, height=height
                )
            )
        return WindowSpan(
            session_id=self.session_id,
            app_id=span.focus.app_id,
            title=span.focus.title,
            window_id=span.focus.window_id,
            start=from_ns(span.start_ns),
            end=from_ns(span.end_ns),
            frames=frames,
        )


class _EarliestSpans:
    """The ``limit`` earliest of the spans added, ordered by start, then session, then arrival.

    Spans come session by session, so the earliest overall are known only at the end; up to
    ``2 * limit`` are held and the later half dropped whenever that fills.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._spans: list[tuple[datetime, str, int, WindowSpan]] = []
        self._added = 0
        self._dropped = False

    def add(self, span: WindowSpan | None) -> None:
        if span is None:
            return
        self._spans.append((span.start, span.session_id, self._added, span))
        self._added += 1
        if len(self._spans) >= 2 * self._limit:
            self._keep_earliest()

    def result(self) -> tuple[list[WindowSpan], bool]:
        """The earliest spans in order, and whether any were dropped."""
        self._keep_earliest()
        return [span for *_, span in self._spans], self._dropped

    def _keep_earliest(self) -> None:
        self._spans.sort(key=lambda item: item[:3])
        if len(self._spans) > self._limit:
            del self._spans[self._limit :]
            self._dropped = True


def _thumbnail(data: bytes) -> bytes:
    """A JPEG within THUMBNAIL_SIZE, sized from the header first: frames stored before ingest read
    their headers may be image bombs, and a JPEG decodes at reduced scale (``decode_frame``)."""
    try:
        image = decode_frame(data, max_pixels=DEFAULT_MAX_FRAME_PIXELS, max_size=THUMBNAIL_SIZE)
    except InvalidMessageError as exc:
        # The agent's bytes are stored as sent; only a thumbnail needs them to decode.
        raise InvalidMessageError(f"the stored frame cannot be decoded for a thumbnail: {exc}") from exc
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()
