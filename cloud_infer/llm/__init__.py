"""LLM clients: one streaming chat interface over an embedded llama.cpp model or an OpenAI-compatible server.

``open_llm(LLMSettings())`` returns the configured ``LLMClient``; backends live in ``embedded`` and
``openai_compat`` and are imported only when chosen.
"""

from __future__ import annotations

from cloud_infer.llm.client import ChatMessage, LLMClient, open_llm
from cloud_infer.llm.config import LLMSettings, packaged_model_path
from cloud_infer.llm.errors import LLMError, LLMTimeoutError, LLMUnavailableError

__all__ = [
    "ChatMessage",
    "LLMClient",
    "LLMError",
    "LLMSettings",
    "LLMTimeoutError",
    "LLMUnavailableError",
    "open_llm",
    "packaged_model_path",
]
