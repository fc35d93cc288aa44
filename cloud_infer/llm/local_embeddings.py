"""Embeddings computed in this process by the sentence encoder Recall indexes with (multilingual-e5-small).

Texts are embedded as e5 *passages*, like the rows of a Recall index, so a caller's vectors compare
with the index's and with each other in either language.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from cloud_infer.llm.errors import LLMTimeoutError
from cloud_infer.tenancy.fair_pool import Priority


class SentenceEncoder(Protocol):
    async def encode(self, tenant: str, texts: list[str], priority: Priority) -> NDArray[np.float32]: ...


class LocalEmbeddings:
    """An ``EmbeddingBackend`` over the shared encoder, in the caller's turns with the other users.

    The server passes Recall's own encoder, so one copy of the model serves indexing and the gateway; a
    request that misses its deadline stops after the slice of texts in progress.
    """

    def __init__(self, encoder: SentenceEncoder, name: str = "local:multilingual-e5-small") -> None:
        self.name = name
        self._encoder = encoder

    async def embed(self, tenant: str, texts: Sequence[str], deadline: float) -> list[list[float]]:
        try:
            async with asyncio.timeout_at(deadline):
                vectors = await self._encoder.encode(tenant, list(texts), Priority.NORMAL)
        except TimeoutError:
            raise LLMTimeoutError(f"{self.name} missed its deadline") from None
        return [[float(x) for x in row] for row in vectors]

    async def close(self) -> None:
        return None
