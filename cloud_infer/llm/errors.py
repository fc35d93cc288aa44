"""Errors raised by the LLM gateway and its backends.

LLMError                  base of everything below; also a request the backend rejected (e.g. too long)
├── LLMUnavailableError   backend not configured, model missing, servers down, queue full; retry later
├── LLMRateLimitedError   this user started too many requests lately; ``retry_after_s`` says when to retry
├── LLMOutputError        structured output did not validate against its schema (e.g. cut by max_tokens)
└── LLMTimeoutError       the request missed its deadline (waiting in the queue counts)

Backend errors (llama.cpp exceptions, ``openai`` SDK errors, vLLM errors) are translated to these inside
the backends, so callers never see a backend's own exception types.
"""

from __future__ import annotations


class LLMError(Exception):
    """Base class for LLM errors."""


class LLMUnavailableError(LLMError):
    """The backend cannot serve now: not configured, model missing, servers down or overloaded."""


class LLMRateLimitedError(LLMError):
    """The user's request rate is over its limit."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LLMOutputError(LLMError):
    """The model's structured output is not valid under the requested schema."""


class LLMTimeoutError(LLMError, TimeoutError):
    """The whole request, from arrival to the last delta, did not finish within its deadline."""
