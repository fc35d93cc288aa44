"""Recall search latency of ONE core over one user's synthetic history of 10k / 100k / 1M rows.

For each corpus size: generate one user's rows (English and Chinese screen text, moments of ~5 rows
over 90 days, six apps), write them to a fresh per-user LanceDB table with the product's schema and
indexes, then measure ``RecallIndex.search`` — the code path of the product — from a child process
pinned to one core, with Lance's compute and I/O pools and Arrow's pool set to one thread.

How the table is built, as the product builds it: ``RecallIndex.add`` creates the table and its BM25
index (``_fts_config``) with the first rows; bulk rows then go to the same table as Arrow batches (the
product adds them in small batches, which only changes how long building takes); ``RecallIndex.optimize``
runs once the table holds ``vector_index_min_rows`` rows (training the IVF_PQ index on them, as the
product's pipeline does when a user crosses that size) and once at the end (compaction, folding the
rest into both indexes). Below ``vector_index_min_rows`` vector search is flat, as in the product.
The table is created by the product's ``RecallIndex``, so it has the product's scalar indexes
(``time_ms``, ``app_id``, ``moment_id``) that keep filters from scanning every row.

Corpus: rows are composed of 2-4 lines from a pool of distinct lines, titles and URLs. A row's ``tokens``
is ``tokenize`` of the whole row (title, URL, app, text), as ``row_record`` makes it: the product's own
function, so the bench follows whatever it indexes (~0.7 ms a row, run in a process per usable core).
Vectors are random unit vectors, except ~1 % of rows drawn
around 64 centres; vector queries are taken near those centres so they have real neighbours within the
product's distance cut-off. Latency does not depend on what the vectors mean; recall quality is not
measured here.

Queries (each after a warm-up, same seeded set for every size): lexical only, vector only and hybrid
(RRF), each filtered to a random 7-day window and one app, and hybrid without filters; ``limit`` is the
product's ``candidates`` setting. The target's mode, ``hybrid + query embedding``, also embeds the
query's words with the product's ``Embedder`` (query lane, ``embed_threads``) as ``RecallService.search``
does: the filtered hybrid search gets a function computing the vector, so its lexical side runs while the
query is embedded (the vector then searched is the synthetic one). ``embed, then hybrid`` is the same
work one after the other (the product's path before that), the baseline measured in the same run.
Both are measured twice: in the pinned process (one core) and in a second process that may use every
core (the server's two: the embedding and the lexical side each on one).

Run: ``.venv/bin/python -m bench.recall_latency_bench --sizes 10000 100000 1000000``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from multiprocessing.queues import Queue
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from bench.report import command_line, fmt, markdown_table, percentile
from cloud_infer.recall.config import RecallSettings, usable_cores
from cloud_infer.recall.embedder import DIMENSIONS, MODEL_ID, Embedder, Role
from cloud_infer.recall.index import EMBED_COLUMN, SCHEMA, TABLE, Filters, RecallIndex, index_location
from cloud_infer.recall.text import query_terms, tokenize
from cloud_infer.tenancy.fair_pool import Priority
from harness.minio import MinioServer
from recall_store.config import StoreSettings
from recall_store.factory import open_store
from recall_store.naming import user_bucket

logger = logging.getLogger(__name__)

TARGET_MS = 50.0  # p95 of hybrid search with filters at 1M rows, the query's embedding included
_EMBEDDED = "hybrid + query embedding"
_SEQUENTIAL = "embed, then hybrid"
TARGET_ROWS = 1_000_000
_DAY_MS = 86_400_000
_END_MS = 1_795_392_000_000  # 2026-11-22 00:00 UTC: a fixed "now", so runs are comparable
_SPAN_DAYS = 90
_CLUSTERS = 64
_CLUSTERED_FRACTION = 0.01
_ROW_NOISE = 0.038  # per-dimension noise around a centre: cosine distance ≈ 0.2 to it
_QUERY_NOISE = 0.02
_FIRST_BATCH = 1000  # rows written through RecallIndex.add, which creates the table and its FTS index
_BATCH = 50_000
_TIMEOUT_S = 1800.0
_BUILD_HTTP_TIMEOUT_S = 120.0  # one bulk upload to MinIO can be large

APPS = ["chromium", "mousepad", "xterm", "code", "libreoffice", "slack"]
_PRODUCTS_TEXT = (
    "Aurora Orion Nimbus Falcon Quartz Zephyr Cobalt Helix Vertex Atlas Lumen Pixel Summit Harbor "
    "Beacon Cedar Comet Delta Ember Fjord Glacier Indigo Juniper Kestrel Lotus Meridian Nova Onyx "
    "Polaris Raven Sierra Tundra Umbra Willow Xenon Yukon Zenith Maple Saffron Tango"
)
PRODUCTS = _PRODUCTS_TEXT.split()
_ZH_WORDS_TEXT = (
    "报销 发票 会议 合同 预算 项目 客户 订单 审批 周报 季度 财务 采购 供应商 数据库 服务器 部署 测试 "
    "版本 发布 需求 设计 文档 邮件 日程 出差 机票 酒店 工资 绩效 招聘 面试 培训 市场 销售 营销 "
    "产品 用户 反馈 问题 修复 性能 延迟 监控 告警 日志 备份 安全 权限 密码 登录 账户 余额 转账 "
    "快递 物流 库存 仓库 上海 北京 深圳 杭州"
)
ZH_WORDS = _ZH_WORDS_TEXT.split()
_EN_WORDS_TEXT = (
    "invoice budget meeting contract quarterly report deploy release latency error timeout "
    "customer order approval roadmap design review dashboard metrics backup incident ticket "
    "payment refund shipping warehouse inventory pricing discount subscription renewal "
    "database server cluster kubernetes pipeline migration schema query index cache"
)
EN_WORDS = _EN_WORDS_TEXT.split()
_EN_LINES = [
    "{p} {w1} for {w2}: total {n} USD due {d} days",
    "Re: {p} {w1} {w2} — please review before Friday ({n} items)",
    "{w1} {w2} dashboard shows {n} ms p95 on {p} cluster",
    "Ticket #{n}: {p} {w1} fails with {w2} after upgrade",
    "{p} {w1} meeting notes, action items: {w2}, follow up in {d} days",
    "Order {n} of {p} shipped, {w1} pending, {w2} updated",
]
_ZH_LINES = [
    "{z1}{z2}已提交，金额 {n} 元，{p} 项目",
    "关于{p}的{z1}和{z2}，请在{d}天内完成",
    "{z1}：{p} {w1} 第{d}季度{z2}汇总 {n}",
    "{p}{z1}流程更新，{z2}负责人确认 {n} 条",
    "今天的{z1}讨论了{z2}，{p} 下一步 {w1}",
]
_TITLES = [
    "{p} {w1} - Chromium",
    "{p}{z1} - Mousepad",
    "~/src/{p_l}/{w1} - xterm",
    "{w1}_{p_l}.py - Code",
    "{p} {z1}.xlsx - LibreOffice Calc",
    "#{w1} | {p} - Slack",
]
_SITES = ["intranet.example.com", "docs.example.org", "mail.example.com", "shop.example.net"]


@dataclass(frozen=True, slots=True)
class Query:
    terms: str
    vector: list[float]
    start_ms: int
    end_ms: int
    app_id: str


@dataclass(frozen=True, slots=True)
class QuerySpec:
    settings: StoreSettings
    user_id: str
    queries: list[Query]
    warmup: int
    limit: int
    max_distance: float
    cpu: int | None
    embed_threads: int
    only_embedding: bool = False  # just the two modes that embed the query


@dataclass(frozen=True, slots=True)
class Timing:
    mode: str
    filtered: bool
    cores: str
    latencies_ms: list[float]
    mean_rows: float


@dataclass(frozen=True, slots=True)
class SizeResult:
    rows: int
    moments: int
    generate_s: float
    write_s: float
    optimize_s: float
    disk_mib: float
    indexes: str
    timings: list[Timing]


class Corpus:
    """Seeded generator of one user's rows as Arrow batches, in the order their moments started."""

    def __init__(self, rows: int, seed: int, line_pool: int) -> None:
        self.rows = rows
        self._rng = np.random.default_rng(seed)
        pool = min(line_pool, max(rows, 1000))
        self._lines = [self._line() for _ in range(pool)]
        self._titles = [[self._title(i) for _ in range(pool // 20 + 1)] for i in range(len(APPS))]
        self._urls = [self._url() for _ in range(pool // 20 + 1)]
        # spawn: the builder's process runs Lance's threads by the time batches are made
        self._tokenizers = ProcessPoolExecutor(usable_cores(), mp_context=mp.get_context("spawn"))
        centres = self._rng.standard_normal((_CLUSTERS, DIMENSIONS)).astype(np.float32)
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        # Moments of 3-7 rows, their starts spread over the 90 days (sessions are days).
        sizes = self._rng.integers(3, 8, size=rows // 3 + 1)
        sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), rows)) + 1]
        sizes[-1] -= int(sizes.sum()) - rows
        self.moments = len(sizes)
        starts = np.sort(self._rng.integers(_END_MS - _SPAN_DAYS * _DAY_MS, _END_MS, size=self.moments))
        self._moment_of_row = np.repeat(np.arange(self.moments), sizes)
        first_row = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        offsets = self._rng.integers(2_000, 30_000, size=rows)
        offsets[first_row] = 0
        self._start_ms = starts[self._moment_of_row]
        within = np.cumsum(offsets) - np.repeat(np.cumsum(offsets)[first_row], sizes)
        self._time_ms = self._start_ms + within
        self._moment_app = self._rng.integers(0, len(APPS), size=self.moments)
        self._moment_title = self._rng.integers(0, len(self._titles[0]), size=self.moments)
        self._moment_url = self._rng.integers(0, len(self._urls), size=self.moments)

    def _fill(self, template: str) -> str:
        rng = self._rng
        product = str(rng.choice(PRODUCTS))
        return template.format(
            p=product,
            p_l=product.lower(),
            w1=rng.choice(EN_WORDS),
            w2=rng.choice(EN_WORDS),
            z1=rng.choice(ZH_WORDS),
            z2=rng.choice(ZH_WORDS),
            n=int(rng.integers(1, 100_000)),
            d=int(rng.integers(1, 31)),
        )

    def _line(self) -> str:
        templates = _ZH_LINES if self._rng.random() < 0.4 else _EN_LINES
        return self._fill(templates[int(self._rng.integers(len(templates)))])

    def _title(self, app: int) -> str:
        return self._fill(_TITLES[app])

    def _url(self) -> str:
        return f"https://{self._rng.choice(_SITES)}/{self._fill('{p_l}/{w1}/{n}')}"

    def close(self) -> None:
        self._tokenizers.shutdown()

    def batches(self, sizes: Sequence[int]) -> Iterator[pa.Table]:
        start = 0
        for size in sizes:
            yield self._batch(start, min(start + size, self.rows))
            start += size

    def _batch(self, lo: int, hi: int) -> pa.Table:
        rng, n = self._rng, hi - lo
        moments = self._moment_of_row[lo:hi]
        apps = self._moment_app[moments]
        lines = rng.integers(0, len(self._lines), size=(n, 4))
        line_counts = rng.integers(2, 5, size=n)
        texts, titles, urls = [], [], []
        for i in range(n):
            m, app = int(moments[i]), int(apps[i])
            picked = [int(j) for j in lines[i, : line_counts[i]]]
            u = int(self._moment_url[m]) if APPS[app] == "chromium" else -1
            texts.append("\n".join(self._lines[j] for j in picked))
            titles.append(self._titles[app][int(self._moment_title[m])])
            urls.append(self._urls[u] if u >= 0 else "")
        wholes = [
            f"{t}\n{u}\n{APPS[int(a)]}\n{x}" for t, u, a, x in zip(titles, urls, apps, texts, strict=True)
        ]
        tokens = list(self._tokenizers.map(tokenize, wholes, chunksize=1000))
        vectors = rng.standard_normal((n, DIMENSIONS)).astype(np.float32)
        clustered = rng.random(n) < _CLUSTERED_FRACTION
        centres = rng.integers(0, _CLUSTERS, size=int(clustered.sum()))
        vectors[clustered] = self.centres[centres] + _ROW_NOISE * vectors[clustered]
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        moment_ids = [
            f"bench-s{int(s // _DAY_MS)}.{int(m)}"
            for s, m in zip(self._start_ms[lo:hi], moments, strict=True)
        ]
        return pa.table(
            {
                "id": [f"{mid}.{lo + i}" for i, mid in enumerate(moment_ids)],
                "moment_id": moment_ids,
                "session_id": [mid.rsplit(".", 1)[0] for mid in moment_ids],
                "seq": np.arange(lo, hi, dtype=np.int64),
                "time_ms": self._time_ms[lo:hi].astype(np.int64),
                "start_ms": self._start_ms[lo:hi].astype(np.int64),
                "app_id": [APPS[int(a)] for a in apps],
                "title": titles,
                "url": urls,
                "source": ["screen"] * n,
                "text": texts,
                "tokens": tokens,
                "frame_key": [""] * n,
                "frame_w": np.zeros(n, dtype=np.int32),
                "frame_h": np.zeros(n, dtype=np.int32),
                "boxes": ["[]"] * n,
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIMENSIONS),
                EMBED_COLUMN: [MODEL_ID] * n,
            },
            schema=SCHEMA,
        )

    def queries(self, count: int, seed: int) -> list[Query]:
        rng = np.random.default_rng(seed)
        queries = []
        for _ in range(count):
            words = [str(rng.choice(PRODUCTS)), str(rng.choice(EN_WORDS if rng.random() < 0.6 else ZH_WORDS))]
            noise = rng.standard_normal(DIMENSIONS).astype(np.float32) * _QUERY_NOISE
            vector = self.centres[int(rng.integers(_CLUSTERS))] + noise
            start = int(rng.integers(_END_MS - _SPAN_DAYS * _DAY_MS, _END_MS - 7 * _DAY_MS))
            queries.append(
                Query(
                    terms=" ".join(query_terms(" ".join(words))),
                    vector=(vector / np.linalg.norm(vector)).tolist(),
                    start_ms=start,
                    end_ms=start + 7 * _DAY_MS,
                    app_id=APPS[int(rng.integers(len(APPS)))],
                )
            )
        return queries


async def _build(
    settings: StoreSettings, user_id: str, corpus: Corpus, min_rows: int
) -> tuple[float, float, float]:
    """Write the corpus and build its indexes; (generate s, write s, optimize s)."""
    generate_s = write_s = optimize_s = 0.0
    table: lancedb.AsyncTable | None = None
    first_optimize = min_rows if corpus.rows >= min_rows else corpus.rows
    sizes = [min(_FIRST_BATCH, corpus.rows)]
    while sum(sizes) < corpus.rows:
        done = sum(sizes)
        # Stop one batch exactly at the first optimize, where the product would train the vector index.
        sizes.append(min(_BATCH, (first_optimize if done < first_optimize else corpus.rows) - done))
    # Ingest creates the user's space (a bucket on MinIO) before anything is indexed.
    store = open_store(settings)
    try:
        await store.put(user_id, "bench/created", b"")
    finally:
        await store.close()
    written = 0
    started = time.perf_counter()
    for batch in corpus.batches(sizes):
        generate_s += time.perf_counter() - started
        started = time.perf_counter()
        if table is None:
            await RecallIndex(settings, timeout_s=_TIMEOUT_S).add(user_id, batch.to_pylist())
            uri, options = index_location(settings, user_id)
            table = await (await lancedb.connect_async(uri, storage_options=options)).open_table(TABLE)
        else:
            await table.add(batch)
        written += batch.num_rows
        write_s += time.perf_counter() - started
        if written == first_optimize or written == corpus.rows:
            started = time.perf_counter()
            # A fresh RecallIndex: a LanceDB table handle does not see rows added through another one.
            await RecallIndex(settings, timeout_s=_TIMEOUT_S).optimize(user_id, min_rows)
            optimize_s += time.perf_counter() - started
            logger.info("%d rows written and optimized", written)
        started = time.perf_counter()
    return generate_s, write_s, optimize_s


async def _rows_in(settings: StoreSettings, user_id: str) -> int:
    """Rows of the user's table (0 when there is none)."""
    uri, options = index_location(settings, user_id)
    try:
        table = await (await lancedb.connect_async(uri, storage_options=options)).open_table(TABLE)
    except ValueError:  # no such table
        return 0
    return await table.count_rows()


async def _index_state(settings: StoreSettings, user_id: str) -> str:
    """Rows each index covers; rows it does not are searched flat."""
    uri, options = index_location(settings, user_id)
    table = await (await lancedb.connect_async(uri, storage_options=options)).open_table(TABLE)
    states = []
    for index in await table.list_indices():
        stats = await table.index_stats(index.name)
        assert stats is not None
        states.append(
            f"{stats.index_type} {stats.num_indexed_rows:,} indexed + {stats.num_unindexed_rows:,} flat"
        )
    if "vector_idx" not in {i.name for i in await table.list_indices()}:
        states.append("vector flat")
    return "; ".join(sorted(states))


def _disk_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _pin_and_limit_threads(cpu: int | None) -> None:
    # Before Lance starts its pools (lazily, on first use): they size themselves from these.
    os.environ["LANCE_CPU_THREADS"] = "1"
    os.environ["LANCE_IO_THREADS"] = "1"
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


async def _measure(spec: QuerySpec) -> list[Timing]:
    index = RecallIndex(spec.settings, max_distance=spec.max_distance, timeout_s=60)
    embedder = Embedder(spec.embed_threads)
    vectors: list[NDArray[np.float32]] = [np.asarray(q.vector, dtype=np.float32) for q in spec.queries]
    modes = [(_SEQUENTIAL, True), (_EMBEDDED, True)]
    if not spec.only_embedding:
        modes = [("lexical", True), ("vector", True), ("hybrid", True), ("hybrid", False), *modes]
    cores = "1" if spec.cpu is not None else str(len(os.sched_getaffinity(0)))

    async def embedded(terms: str, vector: NDArray[np.float32]) -> NDArray[np.float32]:
        await embedder.encode(spec.user_id, [terms], Priority.INTERACTIVE, Role.QUERY)
        return vector

    timings = []
    for mode, filtered in modes:
        latencies, rows = [], 0
        for i in range(spec.warmup + len(spec.queries)):
            q = spec.queries[i % len(spec.queries)]
            filters = (
                Filters(start_ms=q.start_ms, end_ms=q.end_ms, app_id=q.app_id) if filtered else Filters()
            )
            terms = q.terms if mode != "vector" else ""
            vector = vectors[i % len(vectors)] if mode != "lexical" else None
            started = time.perf_counter()
            # The query's own vector is computed, then the synthetic one searched.
            if mode == _SEQUENTIAL:
                await embedder.encode(spec.user_id, [q.terms], Priority.INTERACTIVE, Role.QUERY)
            given = partial(embedded, q.terms, vectors[i % len(vectors)]) if mode == _EMBEDDED else vector
            hits = await index.search(spec.user_id, terms, given, filters, spec.limit)
            if i >= spec.warmup:
                latencies.append((time.perf_counter() - started) * 1000)
                rows += len(hits)
        timings.append(Timing(mode, filtered, cores, latencies, rows / len(spec.queries)))
    await index.close()
    embedder.close()
    return timings


def _query_process(spec: QuerySpec, results: Queue[list[Timing]]) -> None:
    _pin_and_limit_threads(spec.cpu)
    results.put(asyncio.run(_measure(spec)))


def _run_queries(spec: QuerySpec) -> list[Timing]:
    ctx = mp.get_context("spawn")  # a fresh process: Lance's thread pools are sized at first use
    results: Queue[list[Timing]] = ctx.Queue()
    proc = ctx.Process(target=_query_process, args=(spec, results), daemon=True)
    proc.start()
    try:
        return results.get(timeout=_TIMEOUT_S)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()


def _run_size(
    args: argparse.Namespace, settings: StoreSettings, data_dir: Path, rows: int, recall: RecallSettings
) -> SizeResult:
    user_id = f"bench-recall-{rows}"
    corpus = Corpus(rows, args.seed, args.line_pool)
    try:
        if args.reuse and asyncio.run(_rows_in(settings, user_id)) == rows:
            generate_s = write_s = optimize_s = math.nan  # built by an earlier run: "n/a"
            logger.info("%d rows: measuring the table an earlier run built", rows)
        else:
            generate_s, write_s, optimize_s = asyncio.run(
                _build(settings, user_id, corpus, args.vector_index_min_rows)
            )
    finally:
        corpus.close()
    spec = QuerySpec(
        settings=settings,
        user_id=user_id,
        queries=corpus.queries(args.queries, args.seed + 1),
        warmup=args.warmup,
        limit=recall.candidates,
        max_distance=recall.max_vector_distance,
        cpu=args.query_cpu,
        embed_threads=recall.embed_threads,
    )
    timings = _run_queries(spec)
    if spec.cpu is not None:  # the same searches in a process free to use every core
        timings += _run_queries(replace(spec, cpu=None, only_embedding=True))
    result = SizeResult(
        rows=rows,
        moments=corpus.moments,
        generate_s=generate_s,
        write_s=write_s,
        optimize_s=optimize_s,
        disk_mib=_disk_mib(data_dir / user_bucket(user_id)),
        indexes=asyncio.run(_index_state(settings, user_id)),
        timings=timings,
    )
    logger.info("%d rows: %s", rows, [(t.mode, t.filtered, percentile(t.latencies_ms, 95)) for t in timings])
    return result


def render(results: Sequence[SizeResult]) -> str:
    build = markdown_table(
        ["rows", "moments", "generate s", "write s", "optimize + index s", "on disk MiB", "indexes"],
        [
            [
                f"{r.rows:,}",
                f"{r.moments:,}",
                fmt(r.generate_s, 1),
                fmt(r.write_s, 1),
                fmt(r.optimize_s, 1),
                fmt(r.disk_mib),
                r.indexes,
            ]
            for r in results
        ],
    )
    search = markdown_table(
        ["rows", "search", "filters", "cores", "queries", "p50 ms", "p95 ms", "p99 ms", "mean rows returned"],
        [
            [
                f"{r.rows:,}",
                t.mode,
                "7 days + app" if t.filtered else "none",
                t.cores,
                str(len(t.latencies_ms)),
                fmt(percentile(t.latencies_ms, 50), 1),
                fmt(percentile(t.latencies_ms, 95), 1),
                fmt(percentile(t.latencies_ms, 99), 1),
                fmt(t.mean_rows, 1),
            ]
            for r in results
            for t in r.timings
        ],
    )
    return f"{build}\n\n{search}"


def verdict(results: Sequence[SizeResult]) -> str:
    at_target = [r for r in results if r.rows == TARGET_ROWS]
    target = f"target: {_EMBEDDED} with filters p95 < {TARGET_MS:.0f} ms at {TARGET_ROWS:,} rows"
    if not at_target:
        return f"{target} — not run"
    verdicts = []
    for timing in (t for t in at_target[0].timings if t.mode == _EMBEDDED):
        p95 = percentile(timing.latencies_ms, 95)
        verdicts.append(f"{timing.cores} core(s): {p95:.1f} ms, {'met' if p95 < TARGET_MS else 'NOT met'}")
    return f"{target} — {'; '.join(verdicts)}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.recall_latency_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="corpus rows"
    )
    parser.add_argument("--queries", type=int, default=200, help="measured queries per search kind")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured queries before them")
    parser.add_argument("--store", choices=["local", "minio"], default="local", help="where the index lives")
    parser.add_argument("--query-cpu", type=int, default=0, help="core the query process is pinned to")
    parser.add_argument("--no-pin", action="store_true", help="let the query process use every core")
    parser.add_argument(
        "--vector-index-min-rows",
        type=int,
        default=RecallSettings().vector_index_min_rows,
        help="rows at which the IVF_PQ index is trained (default: the product's setting)",
    )
    parser.add_argument(
        "--line-pool", type=int, default=20_000, help="distinct text lines the rows are composed of"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work-dir", type=Path, default=None, help="index data (default: temp)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the table an earlier run left in --work-dir when it holds all the rows (build: n/a)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.no_pin:
        args.query_cpu = None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    recall = RecallSettings()
    every_cpu = os.sched_getaffinity(0)
    if args.query_cpu is not None and len(every_cpu) > 1:
        # MinIO inherits this at start and so stays off the query core; the build uses every core.
        os.sched_setaffinity(0, every_cpu - {args.query_cpu})
    with tempfile.TemporaryDirectory(prefix="shadowdesk-recall-bench-") as tmp:
        work: Path = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results: list[SizeResult] = []
        if args.store == "minio":
            with MinioServer(work / "minio") as minio:
                os.sched_setaffinity(0, every_cpu)
                settings = minio.settings(timeout_s=_BUILD_HTTP_TIMEOUT_S)
                for rows in args.sizes:
                    results.append(_run_size(args, settings, work / "minio", rows, recall))
        else:
            os.sched_setaffinity(0, every_cpu)
            settings = StoreSettings(backend="local", local_root=work / "store")
            for rows in args.sizes:
                results.append(_run_size(args, settings, work / "store", rows, recall))
    pinning = (
        f"query process pinned to cpu {args.query_cpu} (MinIO, if any, off it); the build uses every cpu"
        if args.query_cpu is not None
        else "no pinning"
    )
    sys.stdout.write(
        f"\n{command_line('bench.recall_latency_bench', argv)}\n\n"
        f"machine: {os.cpu_count()} cpus; {pinning}; "
        "LANCE_CPU_THREADS=1, LANCE_IO_THREADS=1, Arrow 1 thread; "
        f"store {args.store}; "
        f"limit {recall.candidates} rows per search, vector cut-off "
        f"{recall.max_vector_distance} (cosine); vectors random unit vectors with "
        f"{_CLUSTERED_FRACTION:.0%} clustered (latency only, not recall quality)\n\n"
        f"{render(results)}\n\n{verdict(results)}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
