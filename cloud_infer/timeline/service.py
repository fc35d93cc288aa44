"""Builds window spans from the event log and serves frame images of one user."""

from __future__ import annotations

import asyncio
import io
from collections import defaultdict
from datetime import datetime

from PIL import Image

from cloud_infer.errors import InvalidMessageError
from cloud_infer.timeline.protocol import FrameRef, TimelineResponse, WindowSpan, from_ns, to_ns
from recall_store.errors import InvalidNameError
from recall_store.event_log import FRAME_CONTENT_TYPES, FRAME_NAME_RE, EventLog, LoggedEvent
from recall_store.naming import validate_id

THUMBNAIL_SIZE = (320, 320)


class TimelineService:
    def __init__(self, event_log: EventLog) -> None:
        self._log = event_log

    async def timeline(self, user_id: str, start: datetime, end: datetime) -> TimelineResponse:
        """Focus spans of all the user's sessions in [start, end), each with the frames taken during it.

        A span runs from its WindowFocus event to the next one of the same session, or else to the
        session's last event in the window; frames before a session's first focus event are left out.
        """
        events = await self._log.read(user_id, to_ns(start), to_ns(end))
        by_session: defaultdict[str, list[LoggedEvent]] = defaultdict(list)
        for logged in events:
            by_session[logged.session_id].append(logged)
        spans = [span for session_id, logged in by_session.items() for span in _spans(session_id, logged)]
        spans.sort(key=lambda span: (span.start, span.session_id))
        return TimelineResponse(start=start, end=end, spans=spans)

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
            return await asyncio.to_thread(_thumbnail, data), "image/jpeg"
        return data, FRAME_CONTENT_TYPES[match.group(1)]


def _spans(session_id: str, events: list[LoggedEvent]) -> list[WindowSpan]:
    spans: list[WindowSpan] = []
    for logged in events:
        event = logged.event
        kind = event.WhichOneof("kind")
        if kind is None:
            continue  # redacted by privacy settings: nothing of it may show, not even its time
        at = from_ns(event.time_unix_nano)
        if spans:
            spans[-1].end = max(spans[-1].end, at)
        if kind == "window_focus":
            focus = event.window_focus
            spans.append(
                WindowSpan(
                    session_id=session_id,
                    app_id=focus.app_id,
                    title=focus.title,
                    window_id=focus.window_id,
                    start=at,
                    end=at,
                )
            )
        elif kind == "frame" and spans and event.frame.stored_key:
            url = "/v1/" + event.frame.stored_key
            spans[-1].frames.append(
                FrameRef(
                    time=at,
                    url=url,
                    thumbnail_url=url + "?thumb=1",
                    width=event.frame.width,
                    height=event.frame.height,
                )
            )
    return spans


def _thumbnail(data: bytes) -> bytes:
    out = io.BytesIO()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail(THUMBNAIL_SIZE)
            image.convert("RGB").save(out, format="JPEG", quality=80)
    except (OSError, Image.DecompressionBombError) as exc:
        # The agent's bytes are stored as sent; only a thumbnail needs them to decode.
        raise InvalidMessageError(f"the stored frame cannot be decoded for a thumbnail: {exc}") from exc
    return out.getvalue()
