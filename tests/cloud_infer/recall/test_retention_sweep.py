"""Retention reaches every user with a space, including those idle since the server restarted."""

from __future__ import annotations

import time

from cloud_infer.config import ServerSettings
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.privacy.protocol import PrivacySettings
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.embedder import Embedder
from cloud_infer.recall.ocr import OcrEngine
from cloud_infer.recall.runtime import open_recall
from cloud_infer.server import create_grpc_server, ingest_service
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.config import StoreSettings
from recall_store.directory import UserDirectory
from recall_store.event_log import EventLog
from recall_store.factory import open_store
from tests.support.cloud import AgentStream, ingest_token

NS_PER_S = 1_000_000_000
DAY_NS = 86400 * NS_PER_S


async def test_an_idle_user_is_swept_after_a_restart(
    store_settings: StoreSettings,
    settings: ServerSettings,
    embedder: Embedder,
    ocr_engine: OcrEngine,
    alice: str,
) -> None:
    store = open_store(store_settings)
    try:
        # Before the restart: alice's agent stores two-day-old and fresh events, then goes quiet.
        service = ingest_service(settings, store)
        server, port = await create_grpc_server(settings, service)
        agent = AgentStream(f"127.0.0.1:{port}", ingest_token(alice, "desk-1"))
        await agent.open(alice, "desk-1")
        now = time.time_ns()
        old = pb.Event(seq=1, time_unix_nano=now - 2 * DAY_NS, metrics=pb.SystemMetrics(cpu_percent=1))
        fresh = pb.Event(seq=2, time_unix_nano=now - NS_PER_S, metrics=pb.SystemMetrics(cpu_percent=2))
        assert await agent.ack([old]) == 1 and await agent.ack([fresh]) == 2
        await agent.close()
        await server.stop(None)
        await PrivacyService(store).put(alice, PrivacySettings(retention_days=1))
        assert alice in await UserDirectory(store).users()

        # A new server process: nothing of alice in memory, and she never reconnects.
        no_llm = LLMGateway(LLMSettings(backend="none"), None)
        runtime = open_recall(
            RecallSettings(), store_settings, store, PrivacyService(store), no_llm, embedder, [ocr_engine]
        )
        try:
            assert await runtime.retention.sweep() >= 1
        finally:
            await runtime.close()
        kept = await EventLog(store).read(alice, 0, now + DAY_NS)
        assert [e.event.seq for e in kept if e.event.WhichOneof("kind")] == [2]
    finally:
        await store.close()
