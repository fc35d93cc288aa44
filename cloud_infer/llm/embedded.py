"""llama.cpp in-process: a GGUF chat model on CPU, for one-machine runs, demos and CI.

The model loads on first use and every call into it runs on one dedicated worker thread, so generations
run one at a time (``max_concurrency`` 1: the gateway's queue decides the order) and the native model is
never touched by two threads. A JSON schema becomes a llama.cpp grammar, so structured output is valid by
construction. llama.cpp keeps the previous prompt's evaluated tokens and reuses the longest common
prefix, which is why the gateway's prompts put their stable parts first.

Tokens cross to the event loop through an asyncio queue; the worker checks a stop event between tokens,
so a consumer that stops iterating, is cancelled or misses its deadline frees the model within one token
(plus the prompt evaluation in progress, which llama.cpp cannot interrupt).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, cast

from cloud_infer.llm.backend import Generation, GenerationRequest, Usage
from cloud_infer.llm.errors import LLMError, LLMTimeoutError, LLMUnavailableError
from cloud_infer.tenancy.fair_pool import lower_thread_priority

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import (
        ChatCompletionRequestMessage,
        ChatCompletionRequestResponseFormat,
        CreateChatCompletionStreamResponse,
    )

logger = logging.getLogger(__name__)
_NICE = 5  # below requests a person waits on (searches), above indexing (10)


class EmbeddedLlama:
    """A ``ChatBackend`` over ``llama_cpp.Llama``."""

    max_concurrency = 1

    def __init__(self, model_path: Path, *, context_tokens: int, threads: int) -> None:
        self.name = f"embedded:{model_path.stem}"
        self._model_path = model_path
        self._context_tokens = context_tokens
        self._threads = threads
        self._llama: Llama | None = None
        # Generating on the CPU takes seconds; it yields the cores to short requests (searches) first.
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="llama", initializer=lower_thread_priority, initargs=(_NICE,)
        )
        self._running: set[threading.Event] = set()
        self._closed = False

    async def generate(self, request: GenerationRequest, deadline: float) -> Generation:
        if self._closed:
            raise LLMUnavailableError(f"{self.name} is closed")
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue[str | Usage | None] = asyncio.Queue()
        stop = threading.Event()

        def emit(text: str | Usage) -> None:
            try:
                loop.call_soon_threadsafe(deltas.put_nowait, text)
            except RuntimeError:  # the loop closed under a late token: nobody is listening any more
                stop.set()

        job: Future[None] = self._executor.submit(self._generate, request, stop, emit)
        finished = asyncio.wrap_future(job, loop=loop)

        def on_finished(future: asyncio.Future[None]) -> None:
            if not future.cancelled():
                future.exception()  # retrieved here, since a consumer that stopped early never reads it
            # Completion reaches the loop after every emitted delta, so None comes last.
            deltas.put_nowait(None)

        finished.add_done_callback(on_finished)
        self._running.add(stop)
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        delta = await deltas.get()
                except TimeoutError:
                    raise LLMTimeoutError(f"{self.name} missed its deadline") from None
                if delta is None:
                    break
                yield delta
            finished.result()
        finally:
            stop.set()
            job.cancel()  # drops it if still queued behind another generation
            self._running.discard(stop)

    def _generate(
        self, request: GenerationRequest, stop: threading.Event, emit: Callable[[str | Usage], None]
    ) -> None:
        if stop.is_set():
            return
        llama = self._load()
        prompt = [{"role": m.role, "content": m.content} for m in request.messages]
        response_format: ChatCompletionRequestResponseFormat | None = None
        if request.json_schema is not None:
            response_format = {"type": "json_object", "schema": dict(request.json_schema)}
        try:
            # With stream=True llama.cpp returns a generator of chunks; its declared type is a union.
            chunks = cast(
                "Generator[CreateChatCompletionStreamResponse, None, None]",
                llama.create_chat_completion(
                    messages=cast("list[ChatCompletionRequestMessage]", prompt),
                    max_tokens=request.max_tokens,
                    temperature=request.temperature,
                    response_format=response_format,
                    stream=True,
                ),
            )
            tokens = 0
            finish_reason: str | None = None
            try:
                for chunk in chunks:
                    if stop.is_set():
                        break
                    choice = chunk["choices"][0]
                    finish_reason = choice["finish_reason"] or finish_reason
                    text: str | None = choice["delta"].get("content")  # type: ignore[assignment]
                    if text is not None:  # one chunk per token; the role-only first chunk has none
                        tokens += 1
                        if text:
                            emit(text)
            finally:
                chunks.close()  # ends llama.cpp's decode loop now rather than at garbage collection
            # Streaming reports no usage: the context holds the prompt and every generated token but
            # the last one sampled when the length limit cut the answer.
            context = llama.n_tokens + (1 if finish_reason == "length" else 0)
            emit(Usage(prompt_tokens=max(0, context - tokens), completion_tokens=tokens))
        except ValueError as error:  # llama.cpp's way of saying the prompt does not fit the context
            raise LLMError(f"{self.name} rejected the request: {error}") from error
        except RuntimeError as error:  # a failed decode
            raise LLMError(f"{self.name} failed: {error}") from error

    def _load(self) -> Llama:
        if self._llama is None:
            if not self._model_path.is_file():
                raise LLMUnavailableError(f"model file {self._model_path} does not exist")
            from llama_cpp import Llama

            logger.info(
                "loading %s (%d context tokens, %d threads)",
                self._model_path,
                self._context_tokens,
                self._threads,
            )
            try:
                self._llama = Llama(
                    model_path=str(self._model_path),
                    n_ctx=self._context_tokens,
                    n_threads=self._threads,
                    n_threads_batch=self._threads,
                    verbose=False,
                )
            except ValueError as error:
                raise LLMUnavailableError(f"cannot load {self._model_path}: {error}") from error
        return self._llama

    async def close(self) -> None:
        """Stop running generations, wait for the worker, free the model; later requests fail."""
        if self._closed:
            return
        self._closed = True
        for stop in self._running:
            stop.set()
        await asyncio.wrap_future(self._executor.submit(self._unload))
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _unload(self) -> None:
        if self._llama is not None:
            self._llama.close()
            self._llama = None
