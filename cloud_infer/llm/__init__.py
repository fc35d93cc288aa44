"""The LLM gateway and its backends.

``open_gateway(LLMSettings(), encoder)`` returns the ``LLMGateway`` every feature uses; backends (embedded
llama.cpp, a fleet of OpenAI-compatible vLLM replicas, vLLM in-process) are chosen by settings alone and
imported only when chosen.
"""

from __future__ import annotations

from cloud_infer.llm.accounting import UsageReport
from cloud_infer.llm.backend import ChatMessage
from cloud_infer.llm.config import LLMSettings, packaged_model_path
from cloud_infer.llm.errors import (
    LLMError,
    LLMOutputError,
    LLMRateLimitedError,
    LLMTimeoutError,
    LLMUnavailableError,
)
from cloud_infer.llm.factory import open_gateway
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.llm.scheduler import Priority

__all__ = [
    "ChatMessage",
    "LLMError",
    "LLMGateway",
    "LLMOutputError",
    "LLMRateLimitedError",
    "LLMSettings",
    "LLMTimeoutError",
    "LLMUnavailableError",
    "Priority",
    "UsageReport",
    "open_gateway",
    "packaged_model_path",
]
