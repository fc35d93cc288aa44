"""Screen frame sensor: grabs the screen with mss, sends a WebP frame only when it changed visibly.

Change detection is a 64-bit difference hash (dHash): the frame is reduced to 9x8 grayscale and each
bit says whether a pixel is brighter than its right neighbour. A frame whose hash differs from the
last *sent* frame's in fewer than ``min_distance`` bits is skipped, so slow drifts still add up; the
first frame after a focus change is always sent.
The screen is grabbed only after the X DAMAGE extension reported a change, so an idle desktop costs
no grabs at all (without DAMAGE every interval grabs).

Privacy (``session_agent.privacy``): while the focused window is private nothing is grabbed, and
other visible private windows are blacked out (their whole top-level frame, whether covered by other
windows or not) before the frame is hashed or encoded. Both are checked on the X server right before
and right after each grab, so a focus change racing the grab cannot slip through.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable

import mss
from mss.exception import ScreenShotError
from PIL import Image, ImageDraw
from Xlib import error as xerror
from Xlib.display import Display
from Xlib.ext import damage

from session_agent.errors import SensorError
from session_agent.privacy import PrivacyRules
from session_agent.sensors.base import Emit, new_event
from session_agent.sensors.memory import release_free_memory
from session_agent.sensors.window import private_view

logger = logging.getLogger(__name__)

MIME_TYPE = "image/webp"
_WEBP_METHOD = 2  # encoder effort 0-6: 2 is several times faster than the default 4 at similar size


def dhash(image: Image.Image) -> int:
    """64-bit difference hash of ``image``."""
    pixels = image.convert("L").resize((9, 8), Image.Resampling.BOX).tobytes()
    bits = 0
    for row in range(8):
        for col in range(8):
            left, right = pixels[row * 9 + col], pixels[row * 9 + col + 1]
            bits = (bits << 1) | (left > right)
    return bits


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def capture(
    grabber: mss.base.MSSBase,
    monitor: dict[str, int],
    windows: Display,
    privacy: PrivacyRules,
    display_name: str,
) -> tuple[Image.Image | None, bool]:
    """The screen with every viewable private window blacked out, and whether it was grabbed at all.

    The image is None while a private window has focus, checked right before and right after the grab.
    """
    before = private_view(windows, privacy)
    if before.focused:
        return None, False
    try:
        shot = grabber.grab(monitor)
    except ScreenShotError as exc:
        raise SensorError(f"screen grab failed on {display_name!r}: {exc}") from exc
    after = private_view(windows, privacy)
    if after.focused:
        return None, True
    image = Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")
    del shot
    if boxes := before.boxes | after.boxes:
        draw = ImageDraw.Draw(image)
        left, top = monitor["left"], monitor["top"]
        for x0, y0, x1, y1 in boxes:
            draw.rectangle((x0 - left, y0 - top, x1 - left - 1, y1 - top - 1), fill=(0, 0, 0))
    return image, True


def encode(image: Image.Image, max_width: int, quality: int) -> tuple[bytes, tuple[int, int]]:
    """``image`` downscaled to at most ``max_width`` and encoded as WebP; the bytes and their size."""
    if image.width > max_width:
        height = max(1, round(image.height * max_width / image.width))
        image = image.resize((max_width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=quality, method=_WEBP_METHOD)
    return buffer.getvalue(), image.size


class FrameSensor:
    name = "frames"

    def __init__(
        self,
        display: str,
        emit: Emit,
        *,
        interval_s: float,
        max_width: int,
        quality: int,
        min_distance: int,
        max_bytes: int,
        focused_window: Callable[[], int],
        privacy: PrivacyRules | None = None,
    ) -> None:
        self._display = display
        self._emit = emit
        self._interval_s = interval_s
        self._max_width = max_width
        self._quality = quality
        self._min_distance = min_distance
        self._max_bytes = max_bytes
        self._focused_window = focused_window
        self._privacy = privacy or PrivacyRules()
        self._last_hash: int | None = None
        self._last_window = 0
        self.ticks = 0
        self.grabs = 0
        self.sent = 0
        # Screen changes not grabbed, or grabs dropped, because a private window had focus.
        self.withheld = 0

    def run(self, stop: threading.Event) -> None:
        try:
            # XGetImage allocates per grab; XShm would keep a screen-sized segment mapped for good.
            grabber = mss.MSS(display=self._display, backend="xgetimage")
            watch = DamageWatch(self._display)
            windows = Display(self._display)
        except (ScreenShotError, xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
            raise SensorError(f"cannot grab the screen of display {self._display!r}: {exc}") from exc
        try:
            monitor = grabber.monitors[0]  # the whole virtual screen
            while True:
                if watch.changed():
                    self._grab(grabber, monitor, windows)
                    release_free_memory()
                self.ticks += 1
                if stop.wait(self._interval_s):
                    return
        except (xerror.ConnectionClosedError, OSError) as exc:
            raise SensorError(f"lost X display {self._display!r}: {exc}") from exc
        finally:
            windows.close()
            watch.close()
            grabber.close()

    def _grab(self, grabber: mss.base.MSSBase, monitor: dict[str, int], windows: Display) -> None:
        image, grabbed = capture(grabber, monitor, windows, self._privacy, self._display)
        self.grabs += grabbed
        if image is None:
            self.withheld += 1
            return
        self.consider(image)

    def consider(self, image: Image.Image) -> None:
        """Emit ``image`` as a frame unless it is near-identical to the last one sent."""
        frame_hash = dhash(image)
        window_id = self._focused_window()
        # A newly focused window is always sent: two mostly-white pages can hash alike, and the cloud
        # needs one frame of every window the user looked at.
        if (
            self._last_hash is not None
            and window_id == self._last_window
            and hamming(frame_hash, self._last_hash) < self._min_distance
        ):
            return
        encoded, size = encode(image, self._max_width, self._quality)
        if len(encoded) > self._max_bytes:
            logger.warning("frame of %d bytes is over the batch limit; skipped", len(encoded))
            return
        event = new_event()
        frame = event.frame
        frame.image = encoded
        frame.mime_type = MIME_TYPE
        frame.width, frame.height = size
        frame.dhash = frame_hash
        frame.window_id = window_id
        self._last_hash, self._last_window = frame_hash, window_id
        self.sent += 1
        self._emit(event)


class DamageWatch:
    """Says whether the screen may have changed since the last call, from X DAMAGE events."""

    def __init__(self, display_name: str) -> None:
        self._display = Display(display_name)
        self._damage: int | None = None
        self._first = True
        if not self._display.has_extension("DAMAGE"):
            logger.info("X server has no DAMAGE extension: grabbing every interval")
            return
        self._display.damage_query_version()
        self._damage = self._display.screen().root.damage_create(damage.DamageReportNonEmpty)
        self._display.sync()

    def changed(self) -> bool:
        if self._damage is None:
            return True
        changed, self._first = self._first, False
        while self._display.pending_events():
            self._display.next_event()
            changed = True
        if changed:
            # Re-arm before grabbing: a change during the grab is reported again, never lost.
            self._display.damage_subtract(self._damage)
            self._display.sync()
        return changed

    def close(self) -> None:
        self._display.close()
