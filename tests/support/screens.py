"""Synthetic screenshots: text drawn as a desktop would show it, for OCR and frame tests."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

from protos.shadowdesk.v1 import ingest_pb2 as pb

FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


def screen(
    lines: list[str], size: tuple[int, int] = (1024, 640), top: int = 40, font_size: int = 22
) -> bytes:
    """A WebP 'screenshot' with the lines drawn in dark text on white, as a desktop would show them."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, font_size)
    for i, line in enumerate(lines):
        draw.text((40, top + i * (font_size + 14)), line, fill=(20, 20, 20), font=font)
    out = io.BytesIO()
    image.save(out, format="WEBP", quality=60)
    return out.getvalue()


def text_frame(lines: list[str], width: int = 1000, height: int = 240) -> bytes:
    """A PNG of dark text on white, large enough for OCR to read reliably."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 44)
    for n, line in enumerate(lines):
        draw.text((40, 40 + n * 90), line, fill=(20, 20, 20), font=font)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def frame_event(seq: int, t_ns: int, image: bytes, window_id: int) -> pb.Event:
    width, height = Image.open(io.BytesIO(image)).size
    return pb.Event(
        seq=seq,
        time_unix_nano=t_ns,
        frame=pb.ScreenFrame(
            image=image, mime_type="image/png", width=width, height=height, dhash=seq, window_id=window_id
        ),
    )
