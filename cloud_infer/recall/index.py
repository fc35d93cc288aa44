"""Per-user hybrid index on LanceDB, stored in the user's own space (MinIO bucket or local directory).

One table ``rows`` per user under ``index/`` of the user's space: a lexical BM25 index (Lance native
FTS, whitespace tokenizer over jieba-segmented ``tokens``, English stemming) and a cosine vector
column. Search runs both sides with the same filter applied before ranking and fuses them with
reciprocal rank fusion, as LanceDB's ``RRFReranker`` does; the lexical side starts while the query's
vector is still being computed. Rows added after the last compaction are searched
unindexed (flat) until ``optimize`` folds them in, so a row is findable as soon as ``add`` returns.

Every row records the model that embedded it (``embed_model``). A table holding rows of another model
(one written before an upgrade of the embedder) is re-embedded in the background when it is opened,
a page of rows at a time, each page replaced in place by id in one commit (no row is lost or
duplicated, and a row erased meanwhile is not brought back); until it is done the vector side of its
searches sees only rows of the current model (vectors of two models do not compare), the lexical
side every row.
"""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import FTS, Bitmap, BTree, IvfPq
from lancedb.query import BooleanQuery, ColumnOrdering, FullTextQuery, MatchQuery, Occur
from numpy.typing import NDArray

from cloud_infer.errors import BackendUnavailableError
from cloud_infer.recall.embedder import DIMENSIONS, MODEL_ID, Embedder, passage_text
from cloud_infer.recall.moments import IndexRow
from cloud_infer.recall.text import tokenize
from cloud_infer.tenancy.fair_pool import Priority
from recall_store.config import StoreSettings
from recall_store.naming import user_bucket

logger = logging.getLogger(__name__)
# Erasure must remove every older version at once (they still hold the erased rows). A search racing
# with that cleanup may fail once and is retried by the user; LanceDB warns about exactly this.
warnings.filterwarnings("ignore", message=r"optimize\(cleanup_older_than=0\)", category=UserWarning)

TABLE = "rows"
INDEX_PREFIX = "index"
_FTS_COLUMN = "tokens"
EMBED_COLUMN = "embed_model"
# The model of every row in tables made before rows recorded theirs.
LEGACY_MODEL_ID = "all-MiniLM-L6-v2"
_REEMBED_PAGE = 256  # rows per commit of a re-embedding (each page: a new table version)
_OPEN_TABLES = 64  # users whose table handles (and index caches) stay open
# Filters run before ranking; without these a filtered search scans every row (bench: p95 148 -> 49 ms
# for hybrid with a time + app filter at 1M rows). moment_id serves moment views and erasure.
# embed_model: opening a table counts the rows of another model (a bitmap of a value or two).
_SCALAR_INDEXES: dict[str, BTree | Bitmap] = {
    "time_ms": BTree(),
    "app_id": Bitmap(),
    "moment_id": BTree(),
    EMBED_COLUMN: Bitmap(),
}
# Lance file format of new tables. A search reads its candidates' columns by row id, which 2.2 (LanceDB
# 0.40's default) does at half 2.1's speed: 20 rows' 15 columns of a 300k-row table, p50 16.1 against
# 8.8 ms (docs/benchmarks.md). Compaction keeps a table's format; older tables stay in theirs.
_FILE_FORMAT = {"new_table_data_storage_version": "2.1"}

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("moment_id", pa.string()),
        ("session_id", pa.string()),
        ("seq", pa.int64()),
        ("time_ms", pa.int64()),
        ("start_ms", pa.int64()),
        ("app_id", pa.string()),
        ("title", pa.string()),
        ("url", pa.string()),
        ("source", pa.string()),
        ("text", pa.string()),
        ("tokens", pa.string()),
        ("frame_key", pa.string()),
        ("frame_w", pa.int32()),
        ("frame_h", pa.int32()),
        ("boxes", pa.string()),
        ("vector", pa.list_(pa.float32(), DIMENSIONS)),
        (EMBED_COLUMN, pa.string()),
    ]
)
_RESULT_COLUMNS = [name for name in SCHEMA.names if name not in ("tokens", "vector", EMBED_COLUMN)]
_STALE = f"{EMBED_COLUMN} IS NULL OR {EMBED_COLUMN} != '{MODEL_ID}'"
_CURRENT = f"{EMBED_COLUMN} = '{MODEL_ID}'"
_RRF_K = 60  # LanceDB's RRFReranker's default
# A search's query vector: given, or computed when needed (while the lexical side searches), or none.
QueryVector = NDArray[np.float32] | Callable[[], Awaitable[NDArray[np.float32] | None]] | None


@dataclass(frozen=True, slots=True)
class Filters:
    start_ms: int | None = None
    end_ms: int | None = None
    app_id: str | None = None
    title_contains: str | None = None
    url_contains: str | None = None
    moment_id: str | None = None
    session_id: str | None = None
    first_seq: int | None = None  # with session_id: seq >= first_seq
    stop_seq: int | None = None  # with session_id: seq < stop_seq

    def sql(self) -> str | None:
        clauses = []
        if self.start_ms is not None:
            clauses.append(f"time_ms >= {int(self.start_ms)}")
        if self.end_ms is not None:
            clauses.append(f"time_ms < {int(self.end_ms)}")
        if self.app_id:
            clauses.append(f"app_id = {_literal(self.app_id.lower())}")
        if self.title_contains:
            clauses.append(f"lower(title) LIKE {_like(self.title_contains)}")
        if self.url_contains:
            clauses.append(f"lower(url) LIKE {_like(self.url_contains)}")
        if self.moment_id:
            clauses.append(f"moment_id = {_literal(self.moment_id)}")
        if self.session_id:
            clauses.append(f"session_id = {_literal(self.session_id)}")
        if self.first_seq is not None:
            clauses.append(f"seq >= {int(self.first_seq)}")
        if self.stop_seq is not None:
            clauses.append(f"seq < {int(self.stop_seq)}")
        return " AND ".join(clauses) or None


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _like(value: str) -> str:
    # LIKE wildcards in user input are dropped rather than escaped: a filter is a plain substring.
    cleaned = "".join(ch for ch in value.lower() if ch not in "%_\\")
    return _literal(f"%{cleaned}%")


def index_location(settings: StoreSettings, user_id: str) -> tuple[str, dict[str, str]]:
    """URI and storage options of the user's index, inside the user's own bucket or directory."""
    bucket = user_bucket(user_id)
    if settings.backend == "minio":
        scheme = "https" if settings.minio_secure else "http"
        return f"s3://{bucket}/{INDEX_PREFIX}", {
            "endpoint": f"{scheme}://{settings.minio_endpoint}",
            "allow_http": str(not settings.minio_secure).lower(),
            "aws_access_key_id": settings.minio_access_key,
            "aws_secret_access_key": settings.minio_secret_key.get_secret_value(),
            "region": settings.minio_region,
            "virtual_hosted_style_request": "false",
            "timeout": f"{int(settings.timeout_s)}s",
            "connect_timeout": f"{int(settings.connect_timeout_s)}s",
        }
    return str(settings.local_root.expanduser() / bucket / INDEX_PREFIX), {}


def row_record(row: IndexRow, vector: NDArray[np.float32]) -> dict[str, Any]:
    return {
        "id": row.id,
        "moment_id": row.moment_id,
        "session_id": row.session_id,
        "seq": row.seq,
        "time_ms": row.time_ms,
        "start_ms": row.start_ms,
        "app_id": row.app_id,
        "title": row.title,
        "url": row.url,
        "source": row.source,
        "text": row.text,
        "tokens": tokenize(f"{row.title}\n{row.url}\n{row.app_id}\n{row.text}"),
        "frame_key": row.frame_key,
        "frame_w": row.frame_w,
        "frame_h": row.frame_h,
        "boxes": row.boxes_json(),
        "vector": vector.tolist(),
        EMBED_COLUMN: MODEL_ID,
    }


class RecallIndex:
    """Opens each user's table on demand and keeps recently used ones open."""

    def __init__(
        self,
        store_settings: StoreSettings,
        max_distance: float = 0.75,
        timeout_s: float | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        """``embedder`` re-embeds tables of an older model; without it they stay lexical only."""
        self._settings = store_settings
        self._max_distance = max_distance
        self._timeout_s = timeout_s or store_settings.timeout_s
        self._embedder = embedder
        self._tables: OrderedDict[str, lancedb.AsyncTable] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._stale: set[str] = set()  # users whose table still has rows of another model
        self._reembedding: dict[str, asyncio.Task[None]] = {}

    async def add(self, user_id: str, records: list[dict[str, Any]]) -> None:
        if records:
            table = await self._table(user_id, create=True)
            assert table is not None
            data = await asyncio.to_thread(pa.Table.from_pylist, records, schema=SCHEMA)
            await self._deadline(table.add(data))

    async def search(
        self,
        user_id: str,
        terms: str,
        vector: QueryVector,
        filters: Filters,
        limit: int,
        expansions: str = "",
        expansion_boost: float = 0.5,
        names: str = "",
    ) -> list[dict[str, Any]]:
        """Rows best first: hybrid when both terms and a vector are given, else whichever is, else newest.
        ``vector`` may be a function computing it, called only once the table is found; the lexical
        side searches meanwhile.
        ``expansions``: more words for the lexical side, each weighing ``expansion_boost`` of a term;
        ``names``: more words weighing as much as a term."""
        table = await self._table(user_id, create=False)
        if table is None:
            return []
        where = filters.sql()
        text: str | FullTextQuery = terms
        if terms and (expansions or names):
            clauses: list[tuple[Occur, FullTextQuery]] = [(Occur.SHOULD, _match(terms, 1.0))]
            if expansions:
                clauses.append((Occur.SHOULD, _match(expansions, expansion_boost)))
            if names:
                clauses.append((Occur.SHOULD, _match(names, 1.0)))
            text = BooleanQuery(clauses)
        # Re-embedding: only rows of this model have comparable vectors; words find every row.
        near_where = (f"({where}) AND {_CURRENT}" if where else _CURRENT) if user_id in self._stale else where
        if terms and vector is not None:
            return await self._fused(table, text, vector, where, near_where, limit)
        vector = await _resolved(vector)
        query: Any
        if terms:
            query = table.query().nearest_to_text(text).select([*_RESULT_COLUMNS, "_score"])
        elif vector is not None:
            query = self._nearest(table, vector).select([*_RESULT_COLUMNS, "_distance"])
            where = near_where
        else:
            query = table.query().select(_RESULT_COLUMNS)
        if where:
            query = query.where(where)
        rows: list[dict[str, Any]] = await self._deadline(query.limit(limit).to_list())
        if not terms and vector is None:
            rows.sort(key=lambda r: r["time_ms"], reverse=True)
        return rows

    def _nearest(self, table: lancedb.AsyncTable, vector: NDArray[np.float32]) -> Any:
        # Only close neighbours count: nearest-neighbour search always returns *something*.
        return (
            table.query()
            .nearest_to(vector)
            .distance_type("cosine")
            .distance_range(upper_bound=self._max_distance)
        )

    async def _fused(
        self,
        table: lancedb.AsyncTable,
        terms: str | FullTextQuery,
        vector: QueryVector,
        where: str | None,
        near_where: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Hybrid search: each side's best ``limit`` rows fused by reciprocal rank, as LanceDB's
        ``RRFReranker`` does. The lexical side starts first, so a query vector still being computed
        (on another core) costs only what it takes beyond the lexical search."""
        text = table.query().nearest_to_text(terms).select([*_RESULT_COLUMNS, "_score"]).limit(limit)
        by_text = asyncio.ensure_future(self._deadline((text.where(where) if where else text).to_list()))
        try:
            by_vector: list[dict[str, Any]] = []
            if (resolved := await _resolved(vector)) is not None:
                near = self._nearest(table, resolved).select([*_RESULT_COLUMNS, "_distance"]).limit(limit)
                by_vector = await self._deadline((near.where(near_where) if near_where else near).to_list())
            ranked_by_text: list[dict[str, Any]] = await by_text
        finally:
            by_text.cancel()  # a no-op once done; stops the lexical side when the vector side failed
        scores: dict[str, float] = defaultdict(float)
        rows: dict[str, dict[str, Any]] = {}
        for ranked in (by_vector, ranked_by_text):
            for rank, row in enumerate(ranked, 1):
                scores[row["id"]] += 1 / (_RRF_K + rank)
                rows.setdefault(row["id"], row)
        fused = sorted(rows.values(), key=lambda row: scores[row["id"]], reverse=True)[:limit]
        for row in fused:
            row["_relevance_score"] = scores[row["id"]]
        return fused

    async def rows(self, user_id: str, filters: Filters, limit: int = 10_000) -> list[dict[str, Any]]:
        """Rows matching ``filters`` in time order (for a moment's detail, export, erasure)."""
        table = await self._table(user_id, create=False)
        if table is None:
            return []
        query = table.query().select(_RESULT_COLUMNS).limit(limit)
        if (where := filters.sql()) is not None:
            query = query.where(where)
        rows: list[dict[str, Any]] = await self._deadline(query.to_list())
        return sorted(rows, key=lambda r: (r["time_ms"], r["id"]))

    async def iter_rows(self, user_id: str, page: int = 1000) -> AsyncGenerator[list[dict[str, Any]], None]:
        """All the user's rows in the order of ``rows`` (time, then id), ``page`` at a time (export).

        Each page is the next ``page`` rows after the last one returned (a key cursor, not an offset),
        so memory stays at one page and a row added meanwhile neither repeats nor shifts a row.
        """
        table = await self._table(user_id, create=False)
        if table is None:
            return
        order = [ColumnOrdering(column_name="time_ms"), ColumnOrdering(column_name="id")]
        after = ""
        while True:
            query = table.query().select(_RESULT_COLUMNS).order_by(order).limit(page)
            if after:
                query = query.where(after)
            rows: list[dict[str, Any]] = await self._deadline(query.to_list())
            if rows:
                yield rows
            if len(rows) < page:
                return
            time_ms, row_id = int(rows[-1]["time_ms"]), _literal(rows[-1]["id"])
            after = f"time_ms >= {time_ms} AND (time_ms > {time_ms} OR id > {row_id})"

    async def delete(self, user_id: str, filters: Filters) -> None:
        table = await self._table(user_id, create=False)
        if table is not None:
            where = filters.sql()
            await self._deadline(table.delete(where or "true"))

    async def count(self, user_id: str) -> int:
        table = await self._table(user_id, create=False)
        return 0 if table is None else int(await self._deadline(table.count_rows()))

    async def optimize(self, user_id: str, vector_index_min_rows: int) -> None:
        """Compact small fragments, fold new rows into the indexes, prune old versions' files."""
        table = await self._table(user_id, create=False)
        if table is None:
            return
        await self._deadline(table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True), 600)
        indices = {i.name for i in await table.list_indices()}
        for column, config in _SCALAR_INDEXES.items():
            if f"{column}_idx" not in indices:  # tables made before the index was introduced
                await self._deadline(table.create_index(column, config=config), 600)
        if "vector_idx" not in indices and await table.count_rows() >= vector_index_min_rows:
            await self._deadline(
                table.create_index("vector", config=IvfPq(distance_type="cosine"), name="vector_idx"), 1800
            )

    async def purge(self, user_id: str) -> None:
        """After a delete: rebuild the text index and remove every older version's files, so erased
        text survives nowhere in the index's storage."""
        table = await self._table(user_id, create=False)
        if table is None:
            return
        await self._deadline(table.create_index(_FTS_COLUMN, config=_fts_config(), replace=True), 600)
        await self._deadline(table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True), 600)

    async def drop(self, user_id: str) -> None:
        """Delete the user's whole index from storage."""
        self._tables.pop(user_id, None)
        if (task := self._reembedding.get(user_id)) is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._stale.discard(user_id)
        uri, options = index_location(self._settings, user_id)
        db = await self._deadline(lancedb.connect_async(uri, storage_options=options))
        if TABLE in (await self._deadline(db.list_tables())).tables:
            await self._deadline(db.drop_table(TABLE))

    def current(self, user_id: str) -> bool:
        """Whether every row of the user's open table was embedded by this embedder's model."""
        return user_id not in self._stale

    async def reembedded(self, user_id: str) -> None:
        """Wait until a running re-embedding of the user's table ends (tests, benchmarks)."""
        if (task := self._reembedding.get(user_id)) is not None:
            await asyncio.shield(task)

    async def close(self) -> None:
        tasks = list(self._reembedding.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tables.clear()

    async def _check_model(self, user_id: str, table: lancedb.AsyncTable) -> None:
        """Mark the table stale when rows of another model are in it, and start re-embedding them."""
        if EMBED_COLUMN not in (await self._deadline(table.schema())).names:
            await self._deadline(table.add_columns({EMBED_COLUMN: f"'{LEGACY_MODEL_ID}'"}), 600)
        if await self._deadline(table.count_rows(_STALE)) == 0:
            self._stale.discard(user_id)
            return
        self._stale.add(user_id)
        if self._embedder is not None and user_id not in self._reembedding:
            task = asyncio.create_task(self._reembed(user_id, table), name=f"recall-reembed-{user_id}")
            self._reembedding[user_id] = task
            task.add_done_callback(lambda _: self._reembedding.pop(user_id, None))

    async def _reembed(self, user_id: str, table: lancedb.AsyncTable) -> None:
        assert self._embedder is not None
        columns = [name for name in SCHEMA.names if name not in ("vector", EMBED_COLUMN)]
        left = int(await self._deadline(table.count_rows(_STALE)))
        logger.info("re-embedding %d rows of a recall index with %s", left, MODEL_ID)
        try:
            while left:
                page = await self._deadline(
                    table.query().where(_STALE).select(columns).limit(_REEMBED_PAGE).to_list()
                )
                rows = list({row["id"]: row for row in page}.values())
                texts = [passage_text(row["title"], row["text"]) for row in rows]
                vectors = await self._embedder.encode(user_id, texts, Priority.BACKGROUND)
                for row, vector in zip(rows, vectors, strict=True):
                    row["vector"], row[EMBED_COLUMN] = vector.tolist(), MODEL_ID
                data = await asyncio.to_thread(pa.Table.from_pylist, rows, schema=SCHEMA)
                # Matched rows only: a row erased since it was read stays erased.
                merge = table.merge_insert("id").when_matched_update_all()
                await self._deadline(merge.execute(data), 600)
                now_left = int(await self._deadline(table.count_rows(_STALE)))
                if now_left >= left:
                    raise RuntimeError(f"re-embedding made no progress ({now_left} rows left)")
                left = now_left
            if "vector_idx" in {i.name for i in await self._deadline(table.list_indices())}:
                config = IvfPq(distance_type="cosine")
                await self._deadline(
                    table.create_index("vector", config=config, name="vector_idx", replace=True), 1800
                )
        except Exception:  # the next open of the table tries again; meanwhile search stays lexical
            logger.exception("re-embedding a recall index failed")
            self._tables.pop(user_id, None)
            return
        self._stale.discard(user_id)
        logger.info("re-embedded a recall index with %s", MODEL_ID)

    async def _table(self, user_id: str, create: bool) -> lancedb.AsyncTable | None:
        if (table := self._tables.get(user_id)) is not None:
            self._tables.move_to_end(user_id)
            return table
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            if (table := self._tables.get(user_id)) is not None:
                return table
            uri, options = index_location(self._settings, user_id)
            try:
                db = await self._deadline(lancedb.connect_async(uri, storage_options=options))
                names = (await self._deadline(db.list_tables())).tables
            except BackendUnavailableError as exc:
                if not create and "NoSuchBucket" in str(exc.__cause__):
                    return None  # the user has no space at all yet
                raise
            if TABLE in names:
                table = await self._deadline(db.open_table(TABLE))
                await self._check_model(user_id, table)
            elif create:
                table = await self._deadline(
                    db.create_table(TABLE, schema=SCHEMA, exist_ok=True, storage_options=_FILE_FORMAT)
                )
                await self._deadline(table.create_index(_FTS_COLUMN, config=_fts_config()))
                for column, config in _SCALAR_INDEXES.items():
                    await self._deadline(table.create_index(column, config=config))
            else:
                return None
            self._tables[user_id] = table
            while len(self._tables) > _OPEN_TABLES:
                self._tables.popitem(last=False)
            return self._tables[user_id]

    async def _deadline(self, awaitable: Any, timeout_s: float | None = None) -> Any:
        try:
            async with asyncio.timeout(timeout_s or self._timeout_s):
                return await awaitable
        except TimeoutError as exc:
            raise BackendUnavailableError("the recall index did not answer in time") from exc
        except (OSError, RuntimeError, ValueError) as exc:
            raise BackendUnavailableError(f"recall index error: {str(exc)[:200]}") from exc


def _fts_config() -> FTS:
    return FTS(
        base_tokenizer="whitespace",
        language="English",
        stem=True,
        lower_case=True,
        remove_stop_words=False,
        with_position=False,
    )


def boxes_from_json(data: str) -> list[tuple[int, int, int, int, str]]:
    return [(int(b[0]), int(b[1]), int(b[2]), int(b[3]), str(b[4])) for b in json.loads(data or "[]")]


async def _resolved(vector: QueryVector) -> NDArray[np.float32] | None:
    if vector is None or isinstance(vector, np.ndarray):
        return vector
    return await vector()


def _match(words: str, boost: float) -> MatchQuery:
    """Any of ``words`` in the tokens column, weighted by ``boost``."""
    # lancedb's pydantic dataclass: its optional fields have defaults the mypy plugin does not see.
    return MatchQuery(words, _FTS_COLUMN, boost=boost)  # type: ignore[call-arg]
