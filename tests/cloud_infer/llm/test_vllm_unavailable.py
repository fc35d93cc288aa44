"""Choosing the vllm backend where vLLM is not installed: the server starts, and the first request says why
it cannot be served. Runs everywhere but on a machine that has vLLM (test_vllm_engine.py covers that)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import pytest

from cloud_infer.llm.backend import ChatMessage, GenerationRequest
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.errors import LLMUnavailableError
from cloud_infer.llm.factory import open_gateway
from cloud_infer.llm.vllm_engine import VLLMEngine

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")

MESSAGES = (ChatMessage("user", "Hello?"),)


async def test_gateway_with_vllm_backend_fails_on_first_use_not_at_start() -> None:
    settings = LLMSettings(backend="vllm", vllm_model="Qwen/Qwen2.5-7B-Instruct", embeddings_backend="none")
    gateway = open_gateway(settings)  # builds without touching vllm
    try:
        assert gateway.chat_available
        backend = gateway.chat_backend
        assert isinstance(backend, VLLMEngine)
        assert backend.name == "vllm:Qwen/Qwen2.5-7B-Instruct"
        assert backend.max_concurrency == settings.vllm_concurrency
        with pytest.raises(LLMUnavailableError, match=r"needs the `vllm` package and a CUDA GPU"):
            await gateway.complete("alice", list(MESSAGES), feature="test")
        assert "vllm" not in sys.modules
    finally:
        await gateway.close()


async def test_every_request_retries_the_start_and_close_ends_the_backend() -> None:
    backend = VLLMEngine("some/model", engine_args={}, max_concurrency=4)
    request = GenerationRequest(request_id="r1", messages=MESSAGES, max_tokens=8)
    deadline = asyncio.get_running_loop().time() + 10
    for _ in range(2):  # a failed start is not cached: a later request tries again
        with pytest.raises(LLMUnavailableError, match="vllm"):
            async for _item in backend.generate(request, deadline):
                pass
    await backend.close()
    with pytest.raises(LLMUnavailableError, match="closed"):
        async for _item in backend.generate(request, deadline):
            pass
