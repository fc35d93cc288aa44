"""Real image files for the frame checks: PNG, JPEG and WebP with some structure, and PNG bombs that
cost no memory to make."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageDraw

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode(
    image_format: str, size: tuple[int, int] = (64, 48), mode: str = "RGB", **options: object
) -> bytes:
    """A real image with some structure (gradient, box, lines), so every codec has work to do."""
    image = Image.linear_gradient("L").resize(size).convert(mode)
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize(size))
    draw = ImageDraw.Draw(image)
    draw.rectangle((4, 4, size[0] // 2, size[1] // 2), outline=1 if mode == "P" else (200, 30, 30))
    draw.line((0, size[1] - 1, size[0] - 1, 0), fill=2 if mode == "P" else (10, 10, 240), width=2)
    out = io.BytesIO()
    image.save(out, format=image_format, **options)
    return out.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int, *, color_type: int = 0, bit_depth: int = 1) -> bytes:
    """A valid PNG of ``width``x``height`` black pixels, compressed row by row so it costs no memory.

    Grey at 1 bit (the default) keeps 12000x12000 under 20 KB; RGB at 8 bits (``color_type=2,
    bit_depth=8``) is what decodes to 4 bytes a pixel in Pillow.
    """
    channels = {0: 1, 2: 3}[color_type]
    row = bytes(1 + (width * channels * bit_depth + 7) // 8)  # filter byte 0, then the samples
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
