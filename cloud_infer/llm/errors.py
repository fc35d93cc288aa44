"""Errors raised by the LLM clients.

LLMError                  base of everything below; also a request the backend rejected (e.g. too long)
├── LLMUnavailableError   backend not configured, model missing, server down or overloaded; retry later
└── LLMTimeoutError       the request missed its deadline

Backend errors (llama.cpp exceptions, ``openai`` SDK errors) are translated to these inside the clients,
so callers never see a backend's own exception types.
"""

from __future__ import annotations


class LLMError(Exception):
    """Base class for LLM client errors."""


class LLMUnavailableError(LLMError):
    """The backend cannot serve now: not configured, model missing, server down or overloaded."""


class LLMTimeoutError(LLMError, TimeoutError):
    """The whole request, from sending to the last delta, did not finish within its deadline."""
