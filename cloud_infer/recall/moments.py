"""Moments: what a user had in front of them, as searchable units.

A moment is one focused window over a span of time: it starts when focus moves to a window (or its
title changes) and rolls over after ``max_span_ms`` so a window left open all day still yields
moments of a searchable size. Each event of a moment that brings *new* text becomes one index row:
a frame's OCR lines not seen before in the moment, accessibility text, a URL, clipboard text, and the
window title when the moment starts. Lines already indexed in the moment are dropped (dedup, screen
text apart from the rest), so a frame that only moved the cursor adds nothing. Private windows
(redacted at ingest) start no moment.

``MomentTracker`` is pure and serialisable (``to_json``/``from_json``) so the pipeline can persist it
next to its progress and resume after a restart with the same moment boundaries. It holds the open
moment's title and URLs, so an erasure that covers the moment makes it ``forget`` them (``forget``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

from cloud_infer.recall.ocr import TextBox
from recall_store.tombstones import TombstoneSet

_MAX_SEEN = 4000  # remembered line hashes per moment; older ones are forgotten (re-indexing is harmless)


@dataclass(frozen=True, slots=True)
class IndexRow:
    """One searchable row: new text of a moment at one point in time."""

    id: str
    moment_id: str
    session_id: str
    seq: int
    time_ms: int
    start_ms: int
    app_id: str
    title: str
    url: str
    source: str  # "title", "screen", "accessibility", "url", "clipboard"
    text: str
    frame_key: str = ""
    frame_w: int = 0
    frame_h: int = 0
    boxes: tuple[TextBox, ...] = ()

    def boxes_json(self) -> str:
        return json.dumps([[b.x0, b.y0, b.x1, b.y1, b.text] for b in self.boxes], ensure_ascii=False)


@dataclass
class MomentTracker:
    session_id: str
    max_span_ms: int
    seq: int = 0  # last event processed
    moment_id: str = ""  # "" while no moment is open (no focus yet, or a private window)
    start_ms: int = 0
    window_id: int = 0
    app_id: str = ""
    title: str = ""
    urls: dict[str, str] = field(default_factory=dict)  # window id -> last URL seen
    seen: list[str] = field(default_factory=list)  # hashes of lines indexed in this moment
    tombstones_version: int = 0  # the user's tombstones already applied to this state
    # Rows of this session above ``seq`` may be in the index without this state: saved before a batch's
    # newest window is committed ahead of the rest; the next load deletes them (the batch is redone).
    rows_ahead: bool = False

    def focus(
        self, seq: int, time_ms: int, window_id: int, app_id: str, title: str, private: bool
    ) -> IndexRow | None:
        """A window got focus or changed title: close the moment, open the next (unless private)."""
        self.seq = seq
        if private:
            self.moment_id, self.window_id, self.app_id, self.title = "", window_id, app_id, ""
            return None
        if self.moment_id and window_id == self.window_id and title == self.title:
            return None  # the same window re-announced
        self._open(seq, time_ms, window_id, app_id, title)
        return self._row(seq, time_ms, "title", title) if title else None

    def content(
        self,
        seq: int,
        time_ms: int,
        source: str,
        lines: Sequence[str],
        *,
        window_id: int | None = None,
        frame: tuple[str, int, int, tuple[TextBox, ...]] | None = None,
    ) -> IndexRow | None:
        """New text seen in the current moment; None when nothing in it is new or no moment is open."""
        self.seq = seq
        if not self.moment_id or (window_id is not None and window_id != self.window_id):
            return None
        self._roll_over_if_long(seq, time_ms)
        if source == "clipboard":
            # A selection is the user's act: kept whole even when its lines were seen, once per text.
            text = "\n".join(line for line in (s.strip() for s in lines) if line)
            return self._row(seq, time_ms, source, text) if text and self._remember(f"clip:{text}") else None
        # Screen text is deduplicated apart from the other sources, so a frame (and its boxes) is still
        # indexed when accessibility text already carried the same lines.
        kind = "screen" if source == "screen" else "text"
        fresh = [line for line in (s.strip() for s in lines) if line and self._remember(f"{kind}:{line}")]
        if not fresh:
            return None
        row = self._row(seq, time_ms, source, "\n".join(fresh))
        if frame is not None:
            key, width, height, boxes = frame
            row = replace(row, frame_key=key, frame_w=width, frame_h=height, boxes=boxes)
        return row

    def url(self, seq: int, time_ms: int, url: str, title: str) -> IndexRow | None:
        """The focused browser showed ``url``: later rows of the moment carry it."""
        self.seq = seq
        if not self.moment_id or self.urls.get(str(self.window_id)) == url:
            return None
        self.urls[str(self.window_id)] = url
        return self._row(seq, time_ms, "url", title or url)

    def skip(self, seq: int) -> None:
        self.seq = seq

    def copy(self) -> MomentTracker:
        """An independent copy (the containers copied, their strings shared)."""
        return replace(self, urls=dict(self.urls), seen=list(self.seen))

    def forget(self, dead: TombstoneSet) -> bool:
        """Apply tombstones newer than this state; returns whether there were any.

        URLs (kept per window, without their time) and line hashes are dropped on any erasure: the
        next visit re-adds a URL, and re-indexing a line still on screen is harmless. A moment whose
        opening is covered is closed with its title.
        """
        if not dead.newer_than(self.tombstones_version):
            return False
        self.tombstones_version = dead.version
        self.urls, self.seen = {}, []
        if self.moment_id and dead.covers(self.session_id, self.moment_seq, self.start_ms):
            self.moment_id, self.title, self.app_id = "", "", ""
        return True

    @property
    def moment_seq(self) -> int:
        """Seq of the event that opened the current moment (0 when none is open)."""
        return int(self.moment_id.rsplit(".", 1)[1]) if self.moment_id else 0

    @property
    def current_url(self) -> str:
        return self.urls.get(str(self.window_id), "")

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> MomentTracker:
        return cls(**json.loads(data))

    def _open(self, seq: int, time_ms: int, window_id: int, app_id: str, title: str) -> None:
        self.moment_id = f"{self.session_id}.{seq}"
        self.start_ms, self.window_id, self.app_id, self.title = time_ms, window_id, app_id, title
        self.seen = []

    def _roll_over_if_long(self, seq: int, time_ms: int) -> None:
        if time_ms - self.start_ms > self.max_span_ms:
            self._open(seq, time_ms, self.window_id, self.app_id, self.title)

    def _remember(self, line: str) -> bool:
        digest = hashlib.blake2b(line.encode(), digest_size=8).hexdigest()
        if digest in self.seen:
            return False
        self.seen.append(digest)
        del self.seen[:-_MAX_SEEN]
        return True

    def _row(self, seq: int, time_ms: int, source: str, text: str) -> IndexRow:
        return IndexRow(
            id=f"{self.session_id}.{seq}",
            moment_id=self.moment_id,
            session_id=self.session_id,
            seq=seq,
            time_ms=time_ms,
            start_ms=self.start_ms,
            app_id=self.app_id,
            title=self.title,
            url=self.current_url,
            source=source,
            text=text,
        )
