"""Frame checks on real PNG, JPEG and WebP files: sizes come from the header, bombs never decode.

The fuzz tests hold ``inspect_frame`` and ``decode_frame`` to one promise for any bytes at all: a
sane result within the pixel limit, or InvalidMessageError, never any other exception.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from cloud_infer.errors import InvalidMessageError
from cloud_infer.frames import DEFAULT_MAX_FRAME_PIXELS, decode_frame, inspect_frame
from tests.support.images import PNG_SIGNATURE, encode, png_bomb, png_chunk

FUZZ = settings(max_examples=200, deadline=None, database=None)
FUZZ_MAX_PIXELS = 100 * 100  # small, so mutated sizes cross it often


def with_png_size(data: bytes, width: int, height: int) -> bytes:
    """``data`` claiming another size in its IHDR, with the chunk's CRC recomputed so it still parses."""
    header = struct.pack(">II", width, height) + data[24:29]
    return data[:8] + png_chunk(b"IHDR", header) + data[33:]


def with_png_crcs_fixed(data: bytes) -> bytes:
    """Recompute the CRC of every whole chunk, so a mutation reaches the decoder instead of the CRC check."""
    out, at = bytearray(data[:8]), 8
    while at + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, at)
        if at + 12 + length > len(data):
            break
        out += png_chunk(data[at + 4 : at + 8], data[at + 8 : at + 8 + length])
        at += 12 + length
    return bytes(out + data[at:])


def with_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """``data`` (a baseline JPEG) claiming another size in its SOF0 segment."""
    at = data.index(b"\xff\xc0")
    return data[: at + 5] + struct.pack(">HH", height, width) + data[at + 9 :]


def with_webp_canvas(data: bytes, width: int, height: int) -> bytes:
    """``data`` (an extended VP8X WebP) claiming another canvas size."""
    assert data[12:16] == b"VP8X"
    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return data[:24] + canvas + data[30:]


# name -> (mime type, a real 64x48 image of that type)
SAMPLES: dict[str, tuple[str, bytes]] = {
    "png rgb": ("image/png", encode("PNG")),
    "png palette with transparency": ("image/png", encode("PNG", mode="P", transparency=0)),
    "jpeg": ("image/jpeg", encode("JPEG", quality=80)),
    "jpeg progressive": ("image/jpeg", encode("JPEG", progressive=True)),
    "webp lossy (VP8)": ("image/webp", encode("WEBP", quality=60)),
    "webp lossless (VP8L)": ("image/webp", encode("WEBP", lossless=True)),
    "webp with alpha (VP8X)": ("image/webp", encode("WEBP", mode="RGBA", quality=60)),
}


def assert_sane(data: bytes, mime_type: str, max_pixels: int = FUZZ_MAX_PIXELS) -> None:
    """The promise to any input: a result within ``max_pixels``, or InvalidMessageError, nothing else."""
    size: tuple[int, int] | None
    try:
        size = inspect_frame(data, mime_type, max_pixels=max_pixels)
    except InvalidMessageError:
        size = None
    if size is not None:
        assert 1 <= size[0] * size[1] <= max_pixels
    for max_size in (None, (32, 32)):
        try:
            image = decode_frame(data, max_pixels=max_pixels, max_size=max_size)
        except InvalidMessageError:
            continue
        assert image.mode == "RGB"
        assert 1 <= image.width * image.height <= max_pixels
        if max_size is None and size is not None:
            assert image.size == size
        if max_size is not None:
            assert image.width <= 32 and image.height <= 32


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_real_frames_are_sized_from_their_header_and_decode_to_rgb(sample: str) -> None:
    mime_type, data = SAMPLES[sample]
    assert inspect_frame(data, mime_type, max_pixels=DEFAULT_MAX_FRAME_PIXELS, declared=(64, 48)) == (64, 48)
    image = decode_frame(data, max_pixels=DEFAULT_MAX_FRAME_PIXELS)
    assert (image.mode, image.size) == ("RGB", (64, 48))
    with Image.open(io.BytesIO(data)) as reference:
        expected = reference.convert("RGBA").convert("RGB")
    # Lossy codecs differ a little between decoders; the picture must be the same.
    difference = np.abs(np.asarray(image, dtype=np.int16) - np.asarray(expected, dtype=np.int16))
    assert int(difference.max()) <= 2
    thumbnail = decode_frame(data, max_pixels=DEFAULT_MAX_FRAME_PIXELS, max_size=(16, 16))
    assert (thumbnail.mode, thumbnail.size) == ("RGB", (16, 12))


def test_a_bomb_declared_small_is_refused_from_its_header() -> None:
    bomb = png_bomb(12000, 12000)
    assert len(bomb) < 32 * 1024  # 144 megapixels in a few kilobytes
    with pytest.raises(InvalidMessageError, match=r"^frame is really 12000x12000, declared 64x48$"):
        inspect_frame(bomb, "image/png", max_pixels=DEFAULT_MAX_FRAME_PIXELS, declared=(64, 48))
    too_many = r"frame is 12000x12000 = 144000000 pixels, more than max_frame_pixels=16777216"
    with pytest.raises(InvalidMessageError, match=too_many):
        inspect_frame(bomb, "image/png", max_pixels=DEFAULT_MAX_FRAME_PIXELS)
    with pytest.raises(InvalidMessageError, match=too_many):
        decode_frame(bomb, max_pixels=DEFAULT_MAX_FRAME_PIXELS)
    with pytest.raises(InvalidMessageError, match=too_many):
        decode_frame(bomb, max_pixels=DEFAULT_MAX_FRAME_PIXELS, max_size=(320, 320))


@pytest.mark.parametrize("sample", ["png rgb", "jpeg", "webp lossy (VP8)", "webp lossless (VP8L)"])
def test_the_pixel_limit_is_inclusive(sample: str) -> None:
    mime_type, data = SAMPLES[sample]
    assert inspect_frame(data, mime_type, max_pixels=64 * 48) == (64, 48)
    assert decode_frame(data, max_pixels=64 * 48).size == (64, 48)
    with pytest.raises(InvalidMessageError, match="3072 pixels, more than max_frame_pixels=3071"):
        inspect_frame(data, mime_type, max_pixels=64 * 48 - 1)
    with pytest.raises(InvalidMessageError, match="3072 pixels, more than max_frame_pixels=3071"):
        decode_frame(data, max_pixels=64 * 48 - 1)


def test_a_webp_canvas_is_checked_before_libwebp_allocates_it() -> None:
    # 16384x16384 claimed by a few hundred bytes: libwebp would reserve a 1 GiB canvas on open.
    bomb = with_webp_canvas(SAMPLES["webp with alpha (VP8X)"][1], 16384, 16384)
    with pytest.raises(InvalidMessageError, match="16384x16384 = 268435456 pixels"):
        inspect_frame(bomb, "image/webp", max_pixels=DEFAULT_MAX_FRAME_PIXELS)
    with pytest.raises(InvalidMessageError, match="really 16384x16384, declared 64x48"):
        inspect_frame(bomb, "image/webp", max_pixels=DEFAULT_MAX_FRAME_PIXELS, declared=(64, 48))


def test_jpeg_and_png_headers_that_lie_about_their_size_are_refused() -> None:
    jpeg = with_jpeg_size(SAMPLES["jpeg"][1], 9000, 9000)
    with pytest.raises(InvalidMessageError, match="really 9000x9000, declared 64x48"):
        inspect_frame(jpeg, "image/jpeg", max_pixels=DEFAULT_MAX_FRAME_PIXELS, declared=(64, 48))
    with pytest.raises(InvalidMessageError, match="81000000 pixels"):
        decode_frame(jpeg, max_pixels=DEFAULT_MAX_FRAME_PIXELS)
    # Within the limit but not what the pixel data holds: the decoder runs out of data.
    png = with_png_size(SAMPLES["png rgb"][1], 640, 480)
    assert inspect_frame(png, "image/png", max_pixels=DEFAULT_MAX_FRAME_PIXELS) == (640, 480)
    with pytest.raises(InvalidMessageError, match="frame cannot be decoded"):
        decode_frame(png, max_pixels=DEFAULT_MAX_FRAME_PIXELS)


@pytest.mark.parametrize(
    ("sample", "mime_type", "message"),
    [
        ("png rgb", "image/jpeg", "frame is PNG data, declared image/jpeg"),
        ("jpeg", "image/webp", "frame is JPEG data, declared image/webp"),
        ("webp lossy (VP8)", "image/png", "frame is WEBP data, declared image/png"),
        ("png rgb", "image/gif", "frame is PNG data, declared image/gif"),
    ],
)
def test_the_real_format_must_match_the_mime_type(sample: str, mime_type: str, message: str) -> None:
    with pytest.raises(InvalidMessageError, match=f"^{message}$"):
        inspect_frame(SAMPLES[sample][1], mime_type, max_pixels=DEFAULT_MAX_FRAME_PIXELS)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a PNG, JPEG or WebP image"),
        (b"GIF89a" + bytes(64), "not a PNG, JPEG or WebP image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not a PNG, JPEG or WebP image"),
        (PNG_SIGNATURE, "malformed PNG header"),
        (PNG_SIGNATURE + png_chunk(b"IEND", b""), "malformed PNG header"),
        (PNG_SIGNATURE + png_chunk(b"IHDR", bytes(8)), "malformed PNG header: Truncated IHDR chunk"),
        (b"\xff\xd8\xff\xe0" + bytes(40), "malformed JPEG header"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(64), "malformed WEBP header"),
        (b"RIFF\x00\x00\x00\x00WEBPJUNK" + bytes(64), "malformed WEBP header"),
    ],
)
def test_garbage_gets_a_clear_error(data: bytes, message: str) -> None:
    for mime_type in ("image/png", "image/jpeg", "image/webp"):
        with pytest.raises(InvalidMessageError) as raised:
            inspect_frame(data, mime_type, max_pixels=DEFAULT_MAX_FRAME_PIXELS)
        assert message in str(raised.value) or "declared" in str(raised.value)
    with pytest.raises(InvalidMessageError, match=message):
        decode_frame(data, max_pixels=DEFAULT_MAX_FRAME_PIXELS)


@pytest.mark.parametrize("sample", list(SAMPLES))
def test_every_truncation_is_refused_or_decodes_cleanly(sample: str) -> None:
    mime_type, data = SAMPLES[sample]
    for length in range(len(data)):
        assert_sane(data[:length], mime_type)
    with pytest.raises(InvalidMessageError):
        decode_frame(data[: len(data) // 2], max_pixels=DEFAULT_MAX_FRAME_PIXELS)


@FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_any_bytes(data: bytes) -> None:
    assert_sane(data, "image/png")


@FUZZ
@given(
    st.sampled_from(list(SAMPLES)),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), min_size=1, max_size=8),
)
def test_fuzz_byte_flips(sample: str, flips: list[tuple[int, int]]) -> None:
    mime_type, original = SAMPLES[sample]
    data = bytearray(original)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    assert_sane(bytes(data), mime_type)
    if mime_type == "image/png":
        assert_sane(with_png_crcs_fixed(bytes(data)), mime_type)


SIDES = st.integers(0, 2**31 - 1) | st.integers(0, 300)


@FUZZ
@given(SIDES, SIDES)
def test_fuzz_png_header_sizes(width: int, height: int) -> None:
    data = with_png_size(SAMPLES["png rgb"][1], width, height)
    assert_sane(data, "image/png")
    if (width, height) != (64, 48):
        with pytest.raises(InvalidMessageError):
            inspect_frame(data, "image/png", max_pixels=DEFAULT_MAX_FRAME_PIXELS, declared=(64, 48))


@FUZZ
@given(st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1))
def test_fuzz_jpeg_header_sizes(width: int, height: int) -> None:
    data = with_jpeg_size(SAMPLES["jpeg"][1], width, height)
    assert_sane(data, "image/jpeg")
    if (width, height) != (64, 48):
        with pytest.raises(InvalidMessageError):
            inspect_frame(data, "image/jpeg", max_pixels=DEFAULT_MAX_FRAME_PIXELS, declared=(64, 48))


@FUZZ
@given(st.integers(1, 2**24), st.integers(1, 2**24))
def test_fuzz_webp_canvas_sizes(width: int, height: int) -> None:
    data = with_webp_canvas(SAMPLES["webp with alpha (VP8X)"][1], width, height)
    assert_sane(data, "image/webp")
    if width * height > FUZZ_MAX_PIXELS:
        with pytest.raises(InvalidMessageError, match="pixels, more than max_frame_pixels"):
            inspect_frame(data, "image/webp", max_pixels=FUZZ_MAX_PIXELS)
