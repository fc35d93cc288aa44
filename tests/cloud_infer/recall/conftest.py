"""Recall fixtures: the real OCR and embedding models, loaded once per test session."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator

import pytest
from PIL import Image, ImageDraw, ImageFont

from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.embedder import Embedder
from cloud_infer.recall.ocr import OcrEngine
from cloud_infer.recall.runtime import RecallRuntime, open_recall
from recall_store.config import StoreSettings
from recall_store.factory import open_store

FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"


def screen(lines: list[str], size: tuple[int, int] = (1024, 640), top: int = 40) -> bytes:
    """A WebP 'screenshot' with the lines drawn in dark text on white, as a desktop would show them."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 22)
    for i, line in enumerate(lines):
        draw.text((40, top + i * 36), line, fill=(20, 20, 20), font=font)
    out = io.BytesIO()
    image.save(out, format="WEBP", quality=60)
    return out.getvalue()


@pytest.fixture
def alice() -> str:
    """A fresh user id per test: the MinIO server is shared by the whole test session."""
    return f"alice-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="session")
def ocr_engine() -> OcrEngine:
    return OcrEngine()


@pytest.fixture
async def recall(
    store_settings: StoreSettings, embedder: Embedder, ocr_engine: OcrEngine
) -> AsyncIterator[RecallRuntime]:
    """A RecallRuntime on each real store backend, sharing the session's models."""
    store = open_store(store_settings)
    runtime = open_recall(
        RecallSettings(),
        store_settings,
        store,
        PrivacyService(store),
        LLMGateway(LLMSettings(backend="none"), None),
        embedder,
        [ocr_engine],
    )
    try:
        yield runtime
    finally:
        await runtime.close()
        await store.close()
