"""Builds the gateway with the backends the settings name; nothing loads or connects until first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloud_infer.llm.backend import ChatBackend, EmbeddingBackend
from cloud_infer.llm.config import LLMSettings, packaged_model_path
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.llm.local_embeddings import LocalEmbeddings, SentenceEncoder

if TYPE_CHECKING:
    from cloud_infer.llm.fleet import OpenAIFleet


def open_gateway(settings: LLMSettings, encoder: SentenceEncoder | None = None) -> LLMGateway:
    """The gateway over ``settings``' backends; ``encoder`` serves ``local`` embeddings (none: off).

    The LLM capability's runtime (``cloud_infer.runtime``): ``start()`` it, ``close()`` it last.
    Raises LLMUnavailableError when the embedded backend has no model path and no packaged model.
    """
    return LLMGateway(settings, _chat_backend(settings), _embedding_backend(settings, encoder))


def _chat_backend(settings: LLMSettings) -> ChatBackend | None:
    # Each backend imports its SDK only when chosen: vllm exists only on GPU nodes.
    if settings.backend == "none":
        return None
    if settings.backend == "embedded":
        from cloud_infer.llm.embedded import EmbeddedLlama

        return EmbeddedLlama(
            settings.model_path or packaged_model_path(),
            context_tokens=settings.context_tokens,
            threads=settings.threads,
        )
    if settings.backend == "vllm":
        from cloud_infer.llm.vllm_engine import VLLMEngine

        assert settings.vllm_model is not None, "LLMSettings refuses the vllm backend without a model"
        return VLLMEngine(
            settings.vllm_model,
            engine_args=settings.vllm_engine_args,
            max_concurrency=settings.vllm_concurrency,
        )
    assert settings.openai_model is not None, "LLMSettings refuses the openai backend without a model"
    return _fleet(settings, settings.openai_endpoints, settings.openai_model)


def _embedding_backend(settings: LLMSettings, encoder: SentenceEncoder | None) -> EmbeddingBackend | None:
    if settings.embeddings_backend == "local" and encoder is not None:
        return LocalEmbeddings(encoder)
    return None


def _fleet(settings: LLMSettings, endpoints: list[str], model: str) -> OpenAIFleet:
    from cloud_infer.llm.fleet import OpenAIFleet
    from cloud_infer.llm.openai_compat import OpenAIEndpoint

    return OpenAIFleet(
        [
            OpenAIEndpoint(
                base_url=url,
                api_key=settings.openai_api_key.get_secret_value(),
                model=model,
                schema_format=settings.openai_schema_format,
                max_concurrency=settings.endpoint_concurrency,
            )
            for url in endpoints
        ],
        health_interval_s=settings.health_interval_s,
        health_timeout_s=settings.health_timeout_s,
    )
