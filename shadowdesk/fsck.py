"""``shadowdesk fsck``: check (and repair) users' spaces straight in the store, no server needed.

Prints one JSON report per user (``cloud_infer.recall.reconcile.ConsistencyReport``) and exits 1 when
any user needs repair. ``--repair`` redoes erasures that left anything behind; sessions left unindexed
are caught up by a running server's committed stream, which has the models.
"""

from __future__ import annotations

import sys

from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.reconcile import Consistency
from cloud_infer.recall.runtime import open_recall
from recall_store.config import StoreSettings
from recall_store.directory import UserDirectory
from recall_store.factory import open_store


async def run_fsck(users: list[str] | None, repair: bool = False, orphans: bool = False) -> int:
    store_settings = StoreSettings()
    store = open_store(store_settings)
    # Models load lazily and an fsck never encodes or reads a frame: nothing heavy is loaded.
    recall = open_recall(
        RecallSettings(),
        store_settings,
        store,
        PrivacyService(store),
        LLMGateway(LLMSettings(backend="none"), None),
    )
    consistency = Consistency(recall.service)
    failed = 0
    try:
        for user_id in users or await UserDirectory(store).users():
            report = await (consistency.repair(user_id, orphans) if repair else consistency.check(user_id))
            failed += not report.ok
            sys.stdout.write(report.model_dump_json() + "\n")
    finally:
        await recall.close()
        await store.close()
    return 1 if failed else 0
