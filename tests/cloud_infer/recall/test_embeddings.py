"""Recall's multilingual vectors: a query finds its page in the other language, past a look-alike, and an
index written by the old English-only model is re-embedded when it is opened, keeping every row."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pytest
from lancedb.index import FTS

from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.embedder import DIMENSIONS, MODEL_ID, Embedder, Role, passage_text
from cloud_infer.recall.index import (
    EMBED_COLUMN,
    LEGACY_MODEL_ID,
    SCHEMA,
    TABLE,
    Filters,
    RecallIndex,
    index_location,
    row_record,
)
from cloud_infer.recall.moments import IndexRow
from cloud_infer.recall.runtime import open_recall
from cloud_infer.recall.text import query_terms
from recall_store.config import StoreSettings
from recall_store.factory import open_store

T0_MS = 1_760_000_000_000
# Targets and their look-alikes (same kind of document, other facts), and pages on other subjects.
PAGES = {
    "contract": (
        "采购合同 HT-2026-118",
        "采购合同\n供应商：华东电子有限公司\n合同总价：人民币 48 万元\n交货日期：11月30日",
    ),
    "lease": (
        "租赁合同 ZL-2026-007",
        "办公室租赁合同\n出租方：城南物业\n月租金：人民币 3.2 万元\n租期：两年",
    ),
    "parental": (
        "Parental leave policy · HR portal",
        "Parental leave policy\nEmployees get 16 weeks of paid parental leave after a birth or adoption",
    ),
    "annual": (
        "Annual leave policy · HR portal",
        "Annual leave policy\nEmployees get 20 days of annual leave; unused days expire at the end of March",
    ),
    "weather": ("上海天气预报", "明天小雨，气温 12 到 18 度，东北风三级"),
    "recipe": ("Lemon cake recipe", "Mix flour, eggs and sugar, add lemon zest, bake 35 minutes at 180 C"),
}


def _row(key: str, i: int) -> IndexRow:
    title, text = PAGES[key]
    return IndexRow(
        id=key,
        moment_id=f"m-{key}",
        session_id="desk",
        seq=i,
        time_ms=T0_MS + i,
        start_ms=T0_MS + i,
        app_id="chromium",
        title=title,
        url="",
        source="accessibility",
        text=text,
    )


ROWS = [_row(key, i) for i, key in enumerate(PAGES)]


def _passages(embedder: Embedder) -> np.ndarray:
    return embedder.encode_now([passage_text(r.title, r.text) for r in ROWS], Role.PASSAGE)


@pytest.mark.parametrize(
    ("query", "wanted", "look_alike"),
    [
        ("purchase contract with the electronics supplier", "contract", "lease"),  # en → zh
        ("产假育儿假有几周", "parental", "annual"),  # zh → en
        ("采购合同总价", "contract", "lease"),  # zh → zh: vectors on do not push Chinese aside
        ("how many days of annual leave", "annual", "parental"),  # en → en
    ],
)
async def test_a_query_finds_its_page_in_either_language_before_a_look_alike(
    tmp_path: Path, embedder: Embedder, query: str, wanted: str, look_alike: str
) -> None:
    # Vectors do not depend on the store backend: the local one is enough here.
    settings = StoreSettings(backend="local", local_root=tmp_path / "store")
    store = open_store(settings)
    llm = LLMGateway(LLMSettings(backend="none"), None)
    recall = open_recall(RecallSettings(), settings, store, PrivacyService(store), llm, embedder, [])
    try:
        user = f"xl-{uuid.uuid4().hex[:8]}"
        records = [row_record(r, v) for r, v in zip(ROWS, _passages(embedder), strict=True)]
        await recall.index.add(user, records)
        order = [hit.moment_id for hit in (await recall.service.search(user, query)).hits]
    finally:
        await recall.close()
        await store.close()
    assert order and order[0] == f"m-{wanted}", order  # not the look-alike, in the index too
    assert f"m-{look_alike}" not in order[:1]


async def test_an_index_of_the_old_model_is_reembedded_on_open_and_keeps_every_row(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = StoreSettings(backend="local", local_root=tmp_path / "store")
    user = f"old-{uuid.uuid4().hex[:8]}"
    # The table as the previous release wrote it: no model column, vectors of the English-only model.
    old_schema = pa.schema([f for f in SCHEMA if f.name != EMBED_COLUMN])
    query = "purchase contract with the electronics supplier"
    vector = embedder.encode_now([query], Role.QUERY)[0]
    old_vectors = np.random.default_rng(7).standard_normal((len(ROWS), DIMENSIONS)).astype(np.float32)
    old_vectors[list(PAGES).index("lease")] = vector  # an old vector that looks like a match to the new
    records = [row_record(r, v) for r, v in zip(ROWS, old_vectors, strict=True)]
    for record in records:
        del record[EMBED_COLUMN]
    uri, options = index_location(settings, user)
    db = await lancedb.connect_async(uri, storage_options=options)
    old = await db.create_table(TABLE, data=pa.Table.from_pylist(records, schema=old_schema))
    await old.create_index("tokens", config=FTS(base_tokenizer="whitespace", stem=True))

    async def stored() -> dict[str, tuple[str, np.ndarray]]:
        table = await (await lancedb.connect_async(uri, storage_options=options)).open_table(TABLE)
        rows = (await table.query().select(["id", EMBED_COLUMN, "vector"]).to_arrow()).to_pylist()
        return {r["id"]: (r[EMBED_COLUMN], np.asarray(r["vector"], dtype=np.float32)) for r in rows}

    # Opened without an embedder (nothing re-embeds): marked as the old model's. Until it is
    # re-embedded, vectors reach only rows of the new model (one written since), words every row.
    waiting = RecallIndex(settings)
    assert await waiting.count(user) == len(ROWS)
    assert not waiting.current(user)
    assert {model for model, _ in (await stored()).values()} == {LEGACY_MODEL_ID}
    new_page = dataclasses.replace(_row("contract", len(ROWS)), id="contract-new", moment_id="m-contract-new")
    new_vector = embedder.encode_now([passage_text(new_page.title, new_page.text)], Role.PASSAGE)[0]
    await waiting.add(user, [row_record(new_page, new_vector)])
    found = await waiting.search(user, "", vector, Filters(), 10)
    assert [r["id"] for r in found] == ["contract-new"], "no vector of the old model is compared"
    found = await waiting.search(user, " ".join(query_terms("Lemon cake")), vector, Filters(), 10)
    assert {r["id"] for r in found} == {"contract-new", "recipe"}, "words reach the old rows"
    await waiting.close()

    index = RecallIndex(settings, embedder=embedder)
    assert await index.count(user) == len(ROWS) + 1  # opening starts the re-embedding in the background
    await index.reembedded(user)
    assert index.current(user)
    after = await stored()
    assert sorted(after) == sorted([*PAGES, "contract-new"]), "no row lost or duplicated"
    expected = dict(zip(PAGES, _passages(embedder), strict=True)) | {"contract-new": new_vector}
    for key, (model, new_vector) in after.items():
        assert model == MODEL_ID
        np.testing.assert_allclose(new_vector, expected[key], atol=1e-5)
    twins = {"contract", "contract-new"}  # the same page twice: either may come first
    found = await index.search(user, " ".join(query_terms(query)), vector, Filters(), 10)
    assert {r["id"] for r in found[:2]} == twins
    found = await index.search(user, "", vector, Filters(), 10)  # vectors alone, across languages
    assert {r["id"] for r in found[:2]} == twins
    await index.optimize(user, vector_index_min_rows=50_000)  # adds the indexes the old table lacks
    assert await index.count(user) == len(ROWS) + 1
    await index.close()

    reopened = RecallIndex(settings, embedder=embedder)
    assert await reopened.count(user) == len(ROWS) + 1 and reopened.current(user)
    table = await (await lancedb.connect_async(uri, storage_options=options)).open_table(TABLE)
    assert f"{EMBED_COLUMN}_idx" in {i.name for i in await table.list_indices()}
    await reopened.close()


# A contract, its look-alike (the next contract: same supplier and words, another id and total), and
# the same contract read from a screen by OCR, which dropped a separator.
ID_PAGES = [
    (
        "target",
        "采购合同 HT-2026-118",
        "采购合同 HT-2026-118\n供应商：华东电子有限公司\n合同总价：人民币 48 万元",
    ),
    (
        "look-alike",
        "采购合同 HT-2026-119",
        "采购合同 HT-2026-119\n供应商：华东电子有限公司\n合同总价：人民币 52 万元\n2026 年度框架",
    ),
    ("ocr", "Screenshot", "采购合同HT2026-118供应商华东电子有限公司"),
]


@pytest.mark.parametrize(
    "query", ["HT-2026-118", "合同 HT-2026-118", "ht2026 118", "48 万元的合同 HT-2026-118"]
)
async def test_an_exact_id_in_the_query_ranks_what_holds_it_before_a_look_alike(
    tmp_path: Path, embedder: Embedder, query: str
) -> None:
    settings = StoreSettings(backend="local", local_root=tmp_path / "store")
    store = open_store(settings)
    llm = LLMGateway(LLMSettings(backend="none"), None)
    recall = open_recall(RecallSettings(), settings, store, PrivacyService(store), llm, embedder, [])
    rows = [
        dataclasses.replace(_row("contract", i), id=key, moment_id=f"m-{key}", title=title, text=text)
        for i, (key, title, text) in enumerate(ID_PAGES)
    ]
    vectors = embedder.encode_now([passage_text(r.title, r.text) for r in rows], Role.PASSAGE)
    try:
        user = f"id-{uuid.uuid4().hex[:8]}"
        await recall.index.add(user, [row_record(r, v) for r, v in zip(rows, vectors, strict=True)])
        order = [hit.moment_id for hit in (await recall.service.search(user, query)).hits]
    finally:
        await recall.close()
        await store.close()
    assert set(order[:2]) == {"m-target", "m-ocr"}, order  # both forms of the id before the look-alike
