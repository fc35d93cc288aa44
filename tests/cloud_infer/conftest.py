"""Fixtures of the cloud_infer tests: a real gRPC ingest server on port 0 over a real store, and Recall
with the real OCR and embedding models, loaded once per test session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from cloud_infer.config import ServerSettings
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.embedder import Embedder
from cloud_infer.recall.ocr import OcrEngine
from cloud_infer.recall.runtime import RecallRuntime, open_recall
from recall_store.config import StoreSettings
from recall_store.factory import open_store
from tests.support.cloud import SECRET, FaultyStore
from tests.support.ingest_server import IngestServer, start_ingest


@pytest.fixture
def settings() -> ServerSettings:
    # Small limits so the oversize cases stay small.
    return ServerSettings(
        environment="local",
        token_secret=SecretStr(SECRET),
        grpc_port=0,
        max_message_bytes=256 * 1024,
        max_frame_bytes=128 * 1024,
        max_batch_events=50,
        shutdown_grace_s=1.0,
    )


@pytest.fixture
async def store(store_settings: StoreSettings) -> AsyncIterator[FaultyStore]:
    faulty = FaultyStore(open_store(store_settings))
    yield faulty
    await faulty.close()


@pytest.fixture
async def ingest(settings: ServerSettings, store: FaultyStore) -> AsyncIterator[IngestServer]:
    running = await start_ingest(settings, store)
    yield running
    await running.server.stop(None)


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


@pytest.fixture
def session() -> str:
    return f"desk-{uuid.uuid4().hex[:10]}"


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
