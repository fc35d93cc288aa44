"""Prompt layout that keeps shared prefixes stable, so the engine's prefix cache reuses them.

vLLM (``--enable-prefix-caching``) and llama.cpp reuse the evaluated tokens of the longest prompt prefix
they have seen. So every feature lays its prompts out from the most shared to the least: a constant
system prompt (never a time, a user or a request id), then the context several requests share (the
same window, the same excerpts), then the request itself.
"""

from __future__ import annotations

from cloud_infer.llm.backend import ChatMessage


def layout(system: str, *, context: str, request: str) -> tuple[ChatMessage, ...]:
    user = f"{context}\n\n{request}" if context else request
    return ChatMessage("system", system), ChatMessage("user", user)
