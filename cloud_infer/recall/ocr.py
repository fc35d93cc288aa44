"""Screen text by OCR (PP-OCRv4 Chinese+English models shipped in rapidocr-onnxruntime), re-reading only
what changed.

``FrameReader`` keeps, per session, the last frame it read of each of a few tracks (the pipeline's
track is the window). A new frame of the same track is compared pixel by pixel: identical frames are
skipped; when only a horizontal band changed (typing, a new line, a status bar), only that band is
OCR'd (full width, so no line is cut) and merged with the previous boxes outside it; larger changes are
read whole. Tracks are independent, so frames of different windows can be read at once on different
engines, each window's frames in order. The angle classifier is off: screen text is upright.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from rapidocr_onnxruntime import RapidOCR

from cloud_infer.errors import InvalidMessageError
from cloud_infer.frames import DEFAULT_MAX_FRAME_PIXELS, decode_frame

logger = logging.getLogger(__name__)

_PIXEL_CHANGE = 48  # grey-level difference that counts as a change (lossy WebP noise reaches ~40)
_BAND_MARGIN = 12  # pixels added above and below a changed band
_MAX_BAND_FRACTION = 0.5  # a band taller than this share of the frame is read whole
_TRACKS_KEPT = 4  # last frames remembered per session (~2 MB each at 1280x800): the windows used last


@dataclass(frozen=True, slots=True)
class TextBox:
    """One line of text and its axis-aligned box in frame pixels."""

    text: str
    score: float
    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True, slots=True)
class FrameText:
    boxes: tuple[TextBox, ...]
    # Share of the frame's rows that were OCR'd: 1.0 read whole, 0 < x < 1 a band, 0.0 unchanged.
    read_fraction: float

    @property
    def text(self) -> str:
        return "\n".join(box.text for box in self.boxes)


class OcrEngine:
    """RapidOCR with a fixed thread budget; safe to call from one thread at a time per instance."""

    def __init__(self, threads: int = 1, min_score: float = 0.5) -> None:
        self._threads = threads
        self._min_score = min_score
        self._lock = threading.Lock()
        self._ocr: RapidOCR | None = None

    def read(self, bgr: NDArray[np.uint8], y_offset: int = 0) -> list[TextBox]:
        """Text lines of the image in reading order (top to bottom, left to right)."""
        with self._lock:
            if self._ocr is None:  # the models load on first use (~0.5 s), not at server start
                self._ocr = RapidOCR(
                    intra_op_num_threads=self._threads,
                    inter_op_num_threads=1,
                    use_cls=False,
                    text_score=self._min_score,
                )
            result, _ = self._ocr(bgr, use_cls=False)
        boxes = []
        for points, text, score in result or []:
            xs = [int(p[0]) for p in points]
            ys = [int(p[1]) + y_offset for p in points]
            if text.strip():
                boxes.append(TextBox(text.strip(), float(score), min(xs), min(ys), max(xs), max(ys)))
        return sorted(boxes, key=lambda b: (b.y0 // 8, b.x0))


@dataclass(frozen=True, slots=True)
class LastFrame:
    """What reading a frame leaves for the next frame of its track to be compared with."""

    grey: NDArray[np.int16]
    boxes: tuple[TextBox, ...]


class FrameReader:
    """OCR for the frames of one session; keeps each track's last frame to skip unchanged parts.

    ``read`` reads a track's frames in order. To read frames of one track at once, cut them into runs
    at frames whose ``change`` from the frame before is above ``WHOLE`` (so they are read whole
    whatever came before): each run is read in order with ``read_after``, from the track's ``last``
    frame (the first run) or from nothing (the others), and the last run's end is ``remember``-ed.
    Different tracks and runs may be read from different threads at once, on different engines."""

    WHOLE = _MAX_BAND_FRACTION

    def __init__(self, engine: OcrEngine, max_pixels: int = DEFAULT_MAX_FRAME_PIXELS) -> None:
        self._engine = engine
        self._max_pixels = max_pixels
        self._last: dict[str, LastFrame] = {}  # oldest first

    def read(self, track: str, image: bytes) -> FrameText:
        """Text of ``image``; ``track`` names what the frame shows: only frames of the same track reuse
        each other's text."""
        text, last = self.read_after(self._last.get(track), image, self._engine)
        if last is not None:
            self.remember(track, last)
        return text

    def last(self, track: str) -> LastFrame | None:
        return self._last.get(track)

    def remember(self, track: str, last: LastFrame) -> None:
        # Re-inserted at the end, the oldest dropped: atomic steps, so other tracks' threads are safe.
        self._last.pop(track, None)
        self._last[track] = last
        for old in list(self._last)[:-_TRACKS_KEPT]:
            self._last.pop(old, None)

    def grey(self, image: bytes) -> NDArray[np.int16] | None:
        """The frame in grey levels, None when it cannot be decoded."""
        try:
            return _grey(np.asarray(decode_frame(image, max_pixels=self._max_pixels)))
        except InvalidMessageError:
            return None

    @staticmethod
    def change(before: NDArray[np.int16] | None, after: NDArray[np.int16]) -> float:
        """Share of the frame's rows that the change from ``before`` to ``after`` spans with its margin,
        before old boxes widen it: 0.0 unchanged, 1.0 nothing to compare with. Above
        ``WHOLE`` the frame is read whole whatever text ``before`` had (old boxes only widen a band)."""
        if before is None or before.shape != after.shape:
            return 1.0
        changed_rows = np.flatnonzero((np.abs(after - before) > _PIXEL_CHANGE).any(axis=1))
        if changed_rows.size == 0:
            return 0.0
        height = after.shape[0]
        top, bottom = FrameReader._band(int(changed_rows[0]), int(changed_rows[-1]) + 1, (), height)
        return float((bottom - top) / height)

    def read_after(
        self, last: LastFrame | None, image: bytes, engine: OcrEngine
    ) -> tuple[FrameText, LastFrame | None]:
        """Text of ``image`` following ``last``, and what the next frame follows (``last`` itself when
        this one cannot be decoded). A frame that cannot be decoded (a bomb, truncated, garbage) reads
        as no text: raising would make the pipeline retry its batch forever."""
        try:
            rgb = np.asarray(decode_frame(image, max_pixels=self._max_pixels))
        except InvalidMessageError as exc:
            logger.info("no text for a frame: %s", exc)
            return FrameText((), 1.0), last
        grey = _grey(rgb)
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        if last is not None and last.grey.shape == grey.shape:
            changed_rows = np.flatnonzero((np.abs(grey - last.grey) > _PIXEL_CHANGE).any(axis=1))
            if changed_rows.size == 0:
                return FrameText(last.boxes, 0.0), last
            top, bottom = self._band(
                int(changed_rows[0]), int(changed_rows[-1]) + 1, last.boxes, grey.shape[0]
            )
            if bottom - top <= _MAX_BAND_FRACTION * grey.shape[0]:
                kept = [b for b in last.boxes if b.y1 <= top or b.y0 >= bottom]
                fresh = engine.read(bgr[top:bottom], y_offset=top)
                boxes = tuple(sorted([*kept, *fresh], key=lambda b: (b.y0 // 8, b.x0)))
                return FrameText(boxes, (bottom - top) / grey.shape[0]), LastFrame(grey, boxes)
        boxes = tuple(engine.read(bgr))
        return FrameText(boxes, 1.0), LastFrame(grey, boxes)

    @staticmethod
    def _band(top: int, bottom: int, boxes: tuple[TextBox, ...], height: int) -> tuple[int, int]:
        """The changed rows widened by a margin and by every old box they touch, so no line is cut."""
        top, bottom = max(0, top - _BAND_MARGIN), min(height, bottom + _BAND_MARGIN)
        for box in boxes:  # sorted top to bottom, so one pass widens the band downwards fully
            if box.y1 > top and box.y0 < bottom:
                top, bottom = (
                    min(top, max(0, box.y0 - _BAND_MARGIN)),
                    max(bottom, min(height, box.y1 + _BAND_MARGIN)),
                )
        return top, bottom


def _grey(rgb: NDArray[np.uint8]) -> NDArray[np.int16]:
    grey: NDArray[np.int16] = rgb.astype(np.int16).sum(axis=2) // 3
    return grey
