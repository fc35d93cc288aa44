"""Builds and owns Recall's parts for one server: index, models, pipeline, services, retention job.

Recall reads the committed stream as the consumer ``recall`` (``consume``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.ask import AskService
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.embedder import Embedder
from cloud_infer.recall.index import RecallIndex
from cloud_infer.recall.ocr import OcrEngine
from cloud_infer.recall.pipeline import RecallPipeline
from cloud_infer.recall.reconcile import Consistency, ReconcileJob
from cloud_infer.recall.retention import RetentionJob
from cloud_infer.recall.rewrite import QueryRewriter
from cloud_infer.recall.service import RecallService
from cloud_infer.stream.fanout import Fanout
from recall_store.config import StoreSettings
from recall_store.directory import UserDirectory
from recall_store.store import ObjectStore
from recall_store.tombstones import Tombstones

_ASK_EXCERPTS = 4
CONSUMER = "recall"  # its name in the committed stream


@dataclass
class RecallRuntime:
    settings: RecallSettings
    privacy: PrivacyService
    embedder: Embedder
    index: RecallIndex
    pipeline: RecallPipeline
    service: RecallService
    ask: AskService
    retention: RetentionJob
    reconcile: ReconcileJob
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def consume(self, stream: Fanout) -> None:
        """Index what ``stream`` delivers; the cursor is the pipeline's saved moment state."""
        # A turn per OCR thread and one more, so a session's index write overlaps another's OCR and
        # embedding; sessions waiting for a turn gather larger chunks, and fewer index writes follow.
        turns = self.settings.ocr_workers + 1
        stream.register(CONSUMER, self.pipeline.handle, self.pipeline.cursors, concurrency=turns)

    def start(self) -> None:
        """Start the background jobs (call inside the running event loop) and warm the models up."""
        self._tasks.append(asyncio.create_task(self.embedder.warm_up(), name="recall-warm-up"))
        self._tasks.append(asyncio.create_task(self.retention.run(), name="recall-retention"))
        self._tasks.append(asyncio.create_task(self.reconcile.run(), name="recall-reconcile"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pipeline.close()
        await self.index.close()


def open_recall(
    settings: RecallSettings,
    store_settings: StoreSettings,
    store: ObjectStore,
    privacy: PrivacyService,
    llm: LLMGateway,
    embedder: Embedder | None = None,
    ocr_engines: Sequence[OcrEngine] | None = None,
    tombstones: Tombstones | None = None,
    directory: UserDirectory | None = None,
) -> RecallRuntime:
    """Everything Recall needs; models load lazily on first use, so this returns at once.

    Pass ``embedder`` and ``ocr_engines`` to share already loaded models (tests, benchmarks), and the
    ``tombstones`` and ``directory`` ingest uses (the server does), so both see the same erasures.
    """
    tombstones = tombstones or Tombstones(store)
    directory = directory or UserDirectory(store)
    embedder = embedder or Embedder(
        settings.embed_threads, max_tokens=settings.embed_max_tokens, workers=settings.embed_workers
    )
    index = RecallIndex(store_settings, settings.max_vector_distance, embedder=embedder)
    engines = ocr_engines or [OcrEngine(threads=1) for _ in range(settings.ocr_workers)]
    pipeline = RecallPipeline(settings, store, index, embedder, engines, tombstones)
    capable = llm.chat_available and llm.capable
    rewriter = QueryRewriter(llm) if capable and settings.rewrite_queries else None
    service = RecallService(
        store,
        index,
        embedder,
        pipeline,
        tombstones,
        settings.candidates,
        settings.timezone,
        rewriter,
        settings.search_slots,
    )
    return RecallRuntime(
        settings=settings,
        privacy=privacy,
        embedder=embedder,
        index=index,
        pipeline=pipeline,
        service=service,
        ask=AskService(service, llm, _ASK_EXCERPTS),
        retention=RetentionJob(service, privacy, directory, settings.retention_interval_s),
        reconcile=ReconcileJob(Consistency(service), directory, settings.reconcile_interval_s),
    )
