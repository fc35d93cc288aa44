"""The one interface every LLM backend offers, and the factory that picks a backend from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from cloud_infer.llm.config import LLMSettings, packaged_model_path


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


class LLMClient(Protocol):
    """A chat model that streams its answer.

    ``stream_chat`` yields text deltas as the model produces them. Stopping the iteration (``break``,
    ``aclose()``, cancelling the consuming task) stops the generation soon after. The whole request must
    finish within ``deadline_s`` (default: the backend's configured timeout) or LLMTimeoutError is
    raised; every failure is an ``LLMError``.
    """

    name: str

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        deadline_s: float | None = None,
    ) -> AsyncIterator[str]: ...

    async def close(self) -> None: ...


def open_llm(settings: LLMSettings) -> LLMClient | None:
    """The backend ``settings.backend`` names, or None for ``none``; no model loads or connects yet.

    Raises LLMUnavailableError when the embedded backend has no model path and no packaged model.
    """
    # Each backend imports its SDK only when chosen, which also keeps client.py free of import cycles.
    if settings.backend == "none":
        return None
    if settings.backend == "embedded":
        from cloud_infer.llm.embedded import EmbeddedLlama

        return EmbeddedLlama(
            settings.model_path or packaged_model_path(),
            context_tokens=settings.context_tokens,
            threads=settings.threads,
            timeout_s=settings.timeout_s,
        )
    from cloud_infer.llm.openai_compat import OpenAICompatible

    assert settings.openai_model is not None, "LLMSettings refuses the openai backend without a model"
    return OpenAICompatible(
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key.get_secret_value(),
        model=settings.openai_model,
        timeout_s=settings.timeout_s,
    )
