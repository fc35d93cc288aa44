"""FrameReader on frames that cannot be decoded: no text and a log line, never an exception, since
the recall pipeline would retry the batch of such a frame forever."""

from __future__ import annotations

import logging

import pytest

from cloud_infer.recall.ocr import FrameReader, FrameText, OcrEngine
from tests.support.images import png_bomb
from tests.support.screens import screen

INVOICE = ["Invoice INV-2041", "Total due 1,250.00 EUR"]


def test_undecodable_frames_read_as_no_text_and_the_reader_goes_on(
    ocr_engine: OcrEngine, caplog: pytest.LogCaptureFixture
) -> None:
    good = screen(INVOICE)
    undecodable = {
        "bomb": (png_bomb(12000, 12000), "frame is 12000x12000 = 144000000 pixels"),
        "truncated": (good[: len(good) // 2], "WEBP"),
        "garbage": (b"\x00" * 64, "not a PNG, JPEG or WebP image"),
    }
    reader = FrameReader(ocr_engine)
    for name, (data, problem) in undecodable.items():
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="cloud_infer.recall.ocr"):
            assert reader.read("moment-1", data) == FrameText((), 1.0), name
        [record] = caplog.records
        assert record.levelno == logging.INFO
        assert problem in record.getMessage(), record.getMessage()
        assert len(record.getMessage()) < 400  # names the problem, carries none of the image
    assert "INV-2041" in reader.read("moment-1", good).text


def test_the_pixel_limit_is_the_readers_own(ocr_engine: OcrEngine) -> None:
    good = screen(INVOICE)  # 1024x640
    assert FrameReader(ocr_engine, max_pixels=1024 * 640 - 1).read("moment-1", good) == FrameText((), 1.0)
    assert "INV-2041" in FrameReader(ocr_engine, max_pixels=1024 * 640).read("moment-1", good).text
