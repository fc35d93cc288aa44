"""vLLM's async engine in this process: one GPU model, continuously batched, for a single-node deployment.

``vllm`` is imported only when the first request starts the engine, so every other backend (and every test
without a GPU) runs without it. Starting takes minutes (weights, torch.compile, CUDA graphs); it runs on
a worker thread as one shared task, so a request whose deadline passes during start-up times out while
the start goes on for the next one. ``start()`` lets a caller warm the engine up front.

The chat template comes from the engine's tokenizer and the prompt goes in as token ids, so the usage
counts are exact and vLLM adds no second BOS. Output arrives as deltas (``RequestOutputKind.DELTA``); a
JSON schema becomes structured output (xgrammar/guidance under ``StructuredOutputsParams``). A request
that ends early for any reason (consumer gone, cancelled, deadline) is aborted on the engine, which frees
its KV cache at the next step.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cloud_infer.llm.backend import Generation, GenerationRequest, Usage
from cloud_infer.llm.errors import LLMError, LLMTimeoutError, LLMUnavailableError

if TYPE_CHECKING:
    from vllm.v1.engine.async_llm import AsyncLLM

logger = logging.getLogger(__name__)


class VLLMEngine:
    """A ``ChatBackend`` over ``vllm.v1.engine.async_llm.AsyncLLM`` (``AsyncLLMEngine`` in vLLM 0.26)."""

    def __init__(self, model: str, *, engine_args: Mapping[str, Any], max_concurrency: int) -> None:
        self.name = f"vllm:{model}"
        self.max_concurrency = max_concurrency
        # Prefix caching pays off because the gateway's prompts put the shared system prompt first.
        self._engine_args = {"enable_prefix_caching": True, **engine_args, "model": model}
        self._starting: asyncio.Task[AsyncLLM] | None = None
        self._closed = False

    async def start(self) -> None:
        """Start the engine now (no deadline) instead of on the first request."""
        await self._engine(None)

    async def generate(self, request: GenerationRequest, deadline: float) -> Generation:
        engine = await self._engine(deadline)
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            tokenizer = engine.get_tokenizer()
            text = tokenizer.apply_chat_template(
                [{"role": m.role, "content": m.content} for m in request.messages],
                add_generation_prompt=True,
                tokenize=False,
            )
            prompt_ids: list[int] = tokenizer.encode(text, add_special_tokens=False)
            params = SamplingParams(
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                output_kind=RequestOutputKind.DELTA,
                structured_outputs=(
                    StructuredOutputsParams(json=dict(request.json_schema))
                    if request.json_schema is not None
                    else None
                ),
            )
        except Exception as error:  # a tokenizer without a chat template, a schema vLLM refuses
            raise LLMError(f"{self.name} cannot build the request: {error!r}") from error
        outputs = engine.generate({"prompt_token_ids": prompt_ids}, params, request.request_id)
        completion_tokens = 0
        finished = False
        try:
            while True:
                # The deadline wraps each wait, never a yield, so it cannot fire inside the consumer's code.
                try:
                    async with asyncio.timeout_at(deadline):
                        output = await anext(outputs, None)
                except TimeoutError:
                    raise LLMTimeoutError(f"{self.name} missed its deadline") from None
                except EngineDeadError as error:
                    raise LLMUnavailableError(f"{self.name} engine died: {error}") from error
                except ValueError as error:  # vLLM's validation, e.g. a prompt longer than max_model_len
                    raise LLMError(f"{self.name} rejected the request: {error}") from error
                except Exception as error:
                    raise LLMError(f"{self.name} failed: {error!r}") from error
                if output is None:
                    finished = True
                    break
                completion = output.outputs[0]
                completion_tokens += len(completion.token_ids)
                if completion.text:
                    yield completion.text
            yield Usage(prompt_tokens=len(prompt_ids), completion_tokens=completion_tokens)
        finally:
            if not finished:
                await outputs.aclose()
                await engine.abort(request.request_id)

    async def _engine(self, deadline: float | None) -> AsyncLLM:
        if self._closed:
            raise LLMUnavailableError(f"{self.name} is closed")
        # One shared start task; checking and setting it has no await in between, so no lock is needed.
        if self._starting is None:
            self._starting = asyncio.create_task(asyncio.to_thread(self._start))
        starting = self._starting
        try:
            # Shielded: a caller's deadline or cancellation must not abandon a half-started engine.
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(starting)
        except TimeoutError:
            raise LLMTimeoutError(f"{self.name} is still starting") from None
        except LLMUnavailableError:
            if self._starting is starting:  # not cached: a later request tries again
                self._starting = None
            raise

    def _start(self) -> AsyncLLM:
        if importlib.util.find_spec("vllm") is None:
            raise LLMUnavailableError(
                "the vllm backend needs the `vllm` package and a CUDA GPU; `pip install vllm` on a GPU "
                "host, or use SHADOWDESK_LLM_BACKEND=openai with `vllm serve` replicas"
            )
        import torch

        if not torch.cuda.is_available():
            raise LLMUnavailableError("the vllm backend needs a CUDA GPU and torch sees none")
        # The server process runs gRPC and thread pools, which a forked engine core would inherit broken.
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        logger.info("starting vLLM engine %s", self._engine_args)
        try:
            from vllm import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM

            return AsyncLLM.from_engine_args(AsyncEngineArgs(**self._engine_args))
        except Exception as error:  # a broken install, bad arguments, missing weights, out of GPU memory
            raise LLMUnavailableError(f"cannot start {self.name}: {error!r}") from error

    async def close(self) -> None:
        """Shut the engine (and its engine-core process) down; later requests fail."""
        if self._closed:
            return
        self._closed = True
        starting, self._starting = self._starting, None
        if starting is None:
            return
        try:
            engine = await starting
        except LLMUnavailableError:
            return
        await asyncio.to_thread(engine.shutdown)
