"""Synthetic screenshots: text drawn as a desktop would show it, for OCR and frame tests."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont

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
