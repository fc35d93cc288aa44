"""What the gateway asks of an inference backend: one engine, one server, or a fleet of servers.

Backends know nothing of users, limits or priorities; the gateway decides who runs when and keeps at most
``max_concurrency`` requests in flight to a backend, so a backend never queues work of its own that the
gateway could have ordered better.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    request_id: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int
    temperature: float = 0.0
    # When set, the output is constrained to JSON valid under this schema (grammar / guided decoding).
    json_schema: Mapping[str, Any] | None = None
    # Requests with the same key share prompt prefixes (one user's context): a fleet keeps them together.
    affinity_key: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


# What ``generate`` returns: text deltas, then one Usage.
Generation = AsyncGenerator["str | Usage", None]


class ChatBackend(Protocol):
    """Generates chat completions.

    ``generate`` yields text deltas as they are produced and then exactly one ``Usage``. ``deadline`` is
    an absolute ``loop.time()``; missing it raises LLMTimeoutError. Closing the iterator (the consumer
    stops, is cancelled, or times out) stops the generation on the engine soon after. Every failure is an
    ``LLMError``; LLMUnavailableError means another try later (or elsewhere) may succeed.
    """

    name: str
    max_concurrency: int

    def generate(self, request: GenerationRequest, deadline: float) -> Generation: ...

    async def close(self) -> None: ...


class EmbeddingBackend(Protocol):
    """Turns texts into vectors (one per text, all of one model's dimension), fairly between tenants."""

    name: str

    async def embed(self, tenant: str, texts: Sequence[str], deadline: float) -> list[list[float]]: ...

    async def close(self) -> None: ...
