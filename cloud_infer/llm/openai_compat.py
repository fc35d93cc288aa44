"""A server that speaks the OpenAI chat completions API: vLLM in production, llama.cpp's server in tests.

The deadline covers the whole request: connecting, waiting for the first token, and every later chunk.
The SDK's own retries are off, so a server that is down fails at once; retrying is the caller's policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

import openai

from cloud_infer.llm.client import ChatMessage
from cloud_infer.llm.errors import LLMError, LLMTimeoutError, LLMUnavailableError

T = TypeVar("T")


class OpenAICompatible:
    """An ``LLMClient`` over ``openai.AsyncOpenAI`` with streaming chat completions."""

    def __init__(self, *, base_url: str, api_key: str, model: str, timeout_s: float) -> None:
        self.name = f"openai:{model}"
        self._model = model
        self._timeout_s = timeout_s
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0
        )

    async def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        deadline_s: float | None = None,
    ) -> AsyncIterator[str]:
        budget_s = self._timeout_s if deadline_s is None else deadline_s
        deadline = asyncio.get_running_loop().time() + budget_s
        prompt: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        stream = await self._within(
            deadline,
            self._client.chat.completions.create(
                model=self._model,
                messages=prompt,
                max_tokens=max_tokens,
                temperature=temperature,
                stream=True,
                timeout=budget_s,
            ),
        )
        finish_reason: str | None = None
        try:
            chunks = aiter(stream)
            # The deadline wraps each wait, never a yield, so it cannot fire inside the consumer's code.
            while (chunk := await self._within(deadline, anext(chunks, None))) is not None:
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                finish_reason = choice.finish_reason or finish_reason
                if choice.delta.content:
                    yield choice.delta.content
        finally:
            await stream.close()
        # A cut connection, or a server that failed after answering 200 (llama.cpp's does so for a
        # prompt that overflows its context), ends the stream without a finish reason.
        if finish_reason is None:
            raise LLMError(f"{self.name} ended its stream before the answer was finished")

    async def _within(self, deadline: float, step: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout_at(deadline):
                return await step
        except (TimeoutError, openai.APITimeoutError):
            raise LLMTimeoutError(f"{self.name} missed its deadline") from None
        except openai.APIConnectionError as error:
            raise LLMUnavailableError(f"{self.name} is unreachable: {error}") from error
        except (openai.RateLimitError, openai.InternalServerError) as error:
            raise LLMUnavailableError(f"{self.name} is overloaded or failing: {error}") from error
        except openai.APIError as error:
            raise LLMError(f"{self.name} rejected the request: {error}") from error

    async def close(self) -> None:
        await self._client.close()
