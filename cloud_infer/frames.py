"""Frame images checked from their header before any pixel is decoded.

A 420 KB PNG can hold a 12000x12000 canvas that costs half a gigabyte once decoded, and the agent's
``ScreenFrame.width``/``height`` prove nothing about it. So every decode of an agent's frame (ingest
validation, thumbnails, OCR) goes through here: the real format and size are read from the header and
checked against the declared ones and ``max_pixels`` first; only then are pixels decoded.

``Image.open`` is not used: its own bomb check warns only at 89 MP, far above our limit, and under
``-W error`` that warning escapes as an exception. Each format's ``ImageFile`` class is opened
directly instead, which reads only the header, as ``Image.open`` does. A WebP is sized from its first
30 bytes even before that, because libwebp allocates the whole canvas when it opens a file.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from cloud_infer.errors import InvalidMessageError

# 16 MP: 4K is 8.3 MP and 5K 14.7 MP, so every real screen fits.
DEFAULT_MAX_FRAME_PIXELS = 16_777_216

_MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_IMAGE_FILES: dict[str, type[ImageFile.ImageFile]] = {
    "PNG": PngImagePlugin.PngImageFile,
    "JPEG": JpegImagePlugin.JpegImageFile,
    "WEBP": WebPImagePlugin.WebPImageFile,
}
# What Pillow raises for data it cannot parse or decode. Under ``-W error`` a warning of Pillow
# (an invalid APNG chunk, say) arrives as an exception too; such a frame is refused like a broken one.
# InvalidMessageError is a ValueError: it must never be raised inside a ``try`` that catches these.
_PILLOW_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
    Warning,
)
_MAX_DETAIL_CHARS = 200


def inspect_frame(
    data: bytes, mime_type: str, *, max_pixels: int, declared: tuple[int, int] | None = None
) -> tuple[int, int]:
    """The real (width, height) of ``data``, read from its header without decoding any pixel.

    Raise InvalidMessageError unless it is a PNG, JPEG or WebP of ``mime_type``, with at most
    ``max_pixels`` pixels and, when ``declared`` is given, exactly that size.
    """
    return _open(data, max_pixels, mime_type, declared).size


def decode_frame(data: bytes, *, max_pixels: int, max_size: tuple[int, int] | None = None) -> Image.Image:
    """The RGB pixels of ``data`` after the checks of ``inspect_frame`` (any of the three formats).

    With ``max_size`` the image is scaled down to fit it; a JPEG is then decoded at 1/2 to 1/8 scale
    (``draft``), so its full size never reaches memory. Raise InvalidMessageError for anything that
    does not decode, truncated data included.
    """
    image: Image.Image = _open(data, max_pixels, None, None)
    try:
        if max_size is None:
            image.load()
        else:
            image.thumbnail(max_size)  # draft (JPEG), then reduce and resize
        if image.mode == "P":
            # Straight to RGB, a palette's transparency is dropped with a warning.
            image = image.convert("RGBA")
        return image if image.mode == "RGB" else image.convert("RGB")  # no copy of 16 MP for nothing
    except _PILLOW_ERRORS as exc:
        raise InvalidMessageError(f"frame cannot be decoded: {_detail(exc)}") from exc


def _open(
    data: bytes, max_pixels: int, mime_type: str | None, declared: tuple[int, int] | None
) -> ImageFile.ImageFile:
    """``data`` opened lazily (header only), its format and size checked."""
    image_format = _sniff(data)
    if mime_type is not None and _MIME_TYPES[image_format] != mime_type:
        raise InvalidMessageError(f"frame is {image_format} data, declared {mime_type}")
    if image_format == "WEBP":
        _check_size(_webp_canvas(data), max_pixels, declared)
    try:
        image = _IMAGE_FILES[image_format](io.BytesIO(data))
    except _PILLOW_ERRORS as exc:
        raise InvalidMessageError(f"frame has a malformed {image_format} header: {_detail(exc)}") from exc
    _check_size(image.size, max_pixels, declared)
    return image


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "WEBP"
    raise InvalidMessageError("frame is not a PNG, JPEG or WebP image")


def _webp_canvas(data: bytes) -> tuple[int, int]:
    """Canvas size from the first chunk of a WebP (lossy, lossless or extended), as libwebp reads it."""
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise InvalidMessageError("frame has a malformed WEBP header: no VP8, VP8L or VP8X size")


def _check_size(size: tuple[int, int], max_pixels: int, declared: tuple[int, int] | None) -> None:
    width, height = size
    if declared is not None and size != declared:
        raise InvalidMessageError(f"frame is really {width}x{height}, declared {declared[0]}x{declared[1]}")
    if width < 1 or height < 1:
        raise InvalidMessageError(f"frame is {width}x{height}: it has no pixels")
    if width * height > max_pixels:
        raise InvalidMessageError(
            f"frame is {width}x{height} = {width * height} pixels, more than max_frame_pixels={max_pixels}"
        )


def _detail(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:_MAX_DETAIL_CHARS]
