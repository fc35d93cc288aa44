"""One server that speaks the OpenAI API: a `vllm serve` replica in production, llama.cpp's server in tests.

The deadline covers the whole request: connecting, waiting for the first token, and every later chunk.
The SDK's own retries are off, so a server that is down fails at once; the fleet decides where to retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

import openai

from cloud_infer.llm.backend import Generation, GenerationRequest, Usage
from cloud_infer.llm.errors import LLMError, LLMTimeoutError, LLMUnavailableError

T = TypeVar("T")
SchemaFormat = Literal["json_schema", "json_object"]


class OpenAIEndpoint:
    """Streaming chat completions and a health probe against one base URL."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        schema_format: SchemaFormat = "json_schema",
        max_concurrency: int = 64,
    ) -> None:
        self.name = f"openai:{model}@{base_url}"
        self.base_url = base_url
        self.max_concurrency = max_concurrency
        self._model = model
        self._schema_format = schema_format
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0)

    async def generate(self, request: GenerationRequest, deadline: float) -> Generation:
        # Any: the SDK types these by OpenAI's own models, which llama.cpp's schema form is not.
        response_format: Any = openai.NOT_GIVEN
        if request.json_schema is not None:
            schema = dict(request.json_schema)
            if self._schema_format == "json_schema":  # vLLM: guided decoding under the schema
                response_format = {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": schema, "strict": True},
                }
            else:
                response_format = {"type": "json_object", "schema": schema}
        messages: list[Any] = [{"role": m.role, "content": m.content} for m in request.messages]
        stream = await self._within(
            deadline,
            self._client.chat.completions.create(
                model=self._model,
                messages=messages,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                stream=True,
                stream_options={"include_usage": True},
                timeout=max(0.001, deadline - asyncio.get_running_loop().time()),
                response_format=response_format,
            ),
        )
        finish_reason: str | None = None
        usage: Usage | None = None
        deltas = 0
        try:
            chunks = aiter(stream)
            # The deadline wraps each wait, never a yield, so it cannot fire inside the consumer's code.
            while (chunk := await self._within(deadline, anext(chunks, None))) is not None:
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                finish_reason = choice.finish_reason or finish_reason
                if choice.delta.content:
                    deltas += 1
                    yield choice.delta.content
        finally:
            await stream.close()
        # A cut connection, or a server that failed after answering 200 (llama.cpp's does so for a
        # prompt that overflows its context), ends the stream without a finish reason.
        if finish_reason is None:
            raise LLMError(f"{self.name} ended its stream before the answer was finished")
        # Servers without stream usage (llama.cpp's) send one token per chunk; the prompt is unknown there.
        yield usage or Usage(prompt_tokens=0, completion_tokens=deltas)

    async def healthy(self, timeout_s: float) -> bool:
        """Whether the server answers and serves the model (``GET /models``: vLLM and llama.cpp have it)."""
        try:
            async with asyncio.timeout(timeout_s):
                models = await self._client.models.list(timeout=timeout_s)
        except (TimeoutError, openai.APIError):
            return False
        return any(model.id == self._model for model in models.data)

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
