"""Embeddings computed in this process by a sentence encoder (all-MiniLM-L6-v2 on CPU by default)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from cloud_infer.llm.errors import LLMTimeoutError


class SentenceEncoder(Protocol):
    def encode(self, texts: list[str]) -> NDArray[np.float32]: ...


class LocalEmbeddings:
    """An ``EmbeddingBackend`` over a blocking encoder, run in a worker thread.

    The server passes Recall's own encoder, so one copy of the model serves indexing and the gateway.
    """

    def __init__(self, encoder: SentenceEncoder, name: str = "local:all-MiniLM-L6-v2") -> None:
        self.name = name
        self._encoder = encoder

    async def embed(self, texts: Sequence[str], deadline: float) -> list[list[float]]:
        try:
            async with asyncio.timeout_at(deadline):
                vectors = await asyncio.to_thread(self._encoder.encode, list(texts))
        except TimeoutError:
            raise LLMTimeoutError(f"{self.name} missed its deadline") from None
        return [[float(x) for x in row] for row in vectors]

    async def close(self) -> None:
        return None
