"""Lance file formats for the recall index: what reading a search's candidates by row id costs in each.

Both sides of a search end by reading their candidates' result columns by row id (``LanceRead`` in
``analyze_plan``), the largest part of a search at 1M rows. The same synthetic rows (the latency
bench's ``Corpus``: the product's schema, text and tokens) are written into one table per file format,
in one fragment, and the same random row ids are read from each in turn (interleaved, so the
machine's noise falls on every format alike): ``k`` rows, all of a search's result columns.
The product's format (``RecallIndex``) is marked.

Run: ``.venv/bin/python -m bench.lance_format_bench``
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lancedb
import pyarrow as pa

from bench.recall_latency_bench import Corpus
from bench.report import command_line, fmt, markdown_table, percentile
from cloud_infer.recall.index import _FILE_FORMAT, _RESULT_COLUMNS

_FORMATS = ["2.0", "2.1", "2.2"]
_PRODUCT = _FILE_FORMAT["new_table_data_storage_version"]


async def _measure(args: argparse.Namespace, root: Path) -> list[list[str]]:
    corpus = Corpus(args.rows, args.seed, args.line_pool)
    try:
        data = pa.concat_tables(corpus.batches([args.rows]))
    finally:
        corpus.close()
    tables = {}
    for version in _FORMATS:
        db = await lancedb.connect_async(
            str(root / version), storage_options={"new_table_data_storage_version": version}
        )
        tables[version] = await db.create_table("rows", data=data)
    rng = random.Random(args.seed)
    out = []
    for k in args.take:
        latencies: dict[str, list[float]] = {version: [] for version in _FORMATS}
        for i in range(args.warmup + args.reads):
            ids = rng.sample(range(args.rows), k)
            for version, table in tables.items():
                started = time.perf_counter()
                await table.take_row_ids(ids).select(_RESULT_COLUMNS).to_list()
                if i >= args.warmup:
                    latencies[version].append((time.perf_counter() - started) * 1000)
        for version in _FORMATS:
            values = latencies[version]
            label = f"{version} (the product's)" if version == _PRODUCT else version
            out.append(
                [
                    label,
                    str(k),
                    str(len(values)),
                    fmt(statistics.median(values), 1),
                    fmt(percentile(values, 95), 1),
                ]
            )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000, help="rows of each table")
    parser.add_argument("--take", type=int, nargs="+", default=[3, 20, 50], help="rows read per query")
    parser.add_argument("--reads", type=int, default=140, help="measured reads per format and size")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--line-pool", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lance-format-") as tmp:
        rows = asyncio.run(_measure(args, Path(tmp)))
    out = sys.stdout.write
    out(command_line("bench.lance_format_bench", argv) + "\n")
    out(f"{args.rows:,} rows, {len(_RESULT_COLUMNS)} result columns read by row id\n\n")
    out(markdown_table(["file format", "rows read", "reads", "p50 ms", "p95 ms"], rows) + "\n")


if __name__ == "__main__":
    main()
