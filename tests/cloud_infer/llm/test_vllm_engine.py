"""The in-process vLLM backend against a real engine on a GPU.

Needs the ``vllm`` package, a CUDA GPU and ``SHADOWDESK_TEST_VLLM_MODEL``: a local Hugging Face model
folder (safetensors, tokenizer with a chat template) or a name in the local Hugging Face cache. vLLM
0.26 has no GGUF loader, so the packaged SmolLM2 GGUF does not serve; a SmolLM2-135M-Instruct folder
(``HuggingFaceTB/SmolLM2-135M-Instruct``, ~270 MB) starts in under a minute with ``enforce_eager``.
Without any of the three the module is skipped. The engine starts once for the module, and every test
runs on the module's event loop, since the engine's output handler lives on the loop that first used it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from pydantic import BaseModel, Field

from cloud_infer.llm.backend import ChatMessage, GenerationRequest, Usage
from cloud_infer.llm.errors import LLMTimeoutError
from cloud_infer.llm.vllm_engine import VLLMEngine

pytest.importorskip("vllm")
torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)
MODEL = os.environ.get("SHADOWDESK_TEST_VLLM_MODEL")
if not MODEL:
    pytest.skip("SHADOWDESK_TEST_VLLM_MODEL is not set", allow_module_level=True)

pytestmark = [pytest.mark.gpu, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

ENGINE_ARGS = {"enforce_eager": True, "gpu_memory_utilization": 0.3, "max_model_len": 2048}
STEP_DEADLINE_S = 60.0


class Reminder(BaseModel):
    title: str = Field(min_length=1, max_length=24)
    minutes: int = Field(ge=1, le=120)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine() -> AsyncIterator[VLLMEngine]:
    assert MODEL is not None
    backend = VLLMEngine(MODEL, engine_args=ENGINE_ARGS, max_concurrency=8)
    await backend.start()
    yield backend
    await backend.close()


def request(text: str, *, max_tokens: int, request_id: str, **options: object) -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id,
        messages=(ChatMessage("system", "You are a concise assistant."), ChatMessage("user", text)),
        max_tokens=max_tokens,
        **options,  # type: ignore[arg-type]
    )


def deadline(seconds: float = STEP_DEADLINE_S) -> float:
    return asyncio.get_running_loop().time() + seconds


async def unfinished_requests(backend: VLLMEngine) -> int:
    assert backend._starting is not None
    return int((await backend._starting).output_processor.get_num_unfinished_requests())


async def wait_until_idle(backend: VLLMEngine, timeout_s: float = 10.0) -> None:
    until = time.monotonic() + timeout_s
    while (count := await unfinished_requests(backend)) and time.monotonic() < until:
        await asyncio.sleep(0.02)
    assert count == 0, f"{count} requests still running on the engine"


async def test_streams_deltas_then_one_usage(engine: VLLMEngine) -> None:
    items = [
        item
        async for item in engine.generate(
            request("Name three colours.", max_tokens=24, request_id="stream"), deadline()
        )
    ]
    deltas, usage = items[:-1], items[-1]
    assert isinstance(usage, Usage)
    assert deltas and all(isinstance(delta, str) and delta for delta in deltas)
    assert "".join(deltas).strip()  # type: ignore[arg-type]
    assert 1 <= usage.completion_tokens <= 24
    assert usage.completion_tokens >= len(deltas)
    assert usage.prompt_tokens > 10  # the chat template wraps both messages


async def test_json_schema_output_is_valid(engine: VLLMEngine) -> None:
    schema = Reminder.model_json_schema()
    items = [
        item
        async for item in engine.generate(
            request(
                "Remind me to stretch in 30 minutes. Answer in JSON.",
                max_tokens=96,
                request_id="json",
                json_schema=schema,
            ),
            deadline(),
        )
    ]
    text = "".join(item for item in items if isinstance(item, str))
    reminder = Reminder.model_validate_json(text)
    assert 1 <= reminder.minutes <= 120


async def test_closing_mid_stream_aborts_and_the_engine_serves_on(engine: VLLMEngine) -> None:
    stream = engine.generate(
        request("Count from one to five hundred in words.", max_tokens=1500, request_id="cancel"),
        deadline(),
    )
    async with contextlib.aclosing(stream):
        received = [await anext(stream), await anext(stream)]
    assert all(isinstance(item, str) for item in received)
    await wait_until_idle(engine)

    items = [
        item
        async for item in engine.generate(
            request("Say hello.", max_tokens=8, request_id="after-cancel"), deadline()
        )
    ]
    assert isinstance(items[-1], Usage) and items[-1].completion_tokens >= 1


async def test_cancelled_consumer_aborts_the_request(engine: VLLMEngine) -> None:
    async def consume() -> None:
        async for _ in engine.generate(
            request("Write a long story about the sea.", max_tokens=1500, request_id="task"), deadline()
        ):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until_idle(engine)


async def test_missed_deadline_raises_timeout_and_aborts(engine: VLLMEngine) -> None:
    with pytest.raises(LLMTimeoutError):
        async for _ in engine.generate(
            request("Write a long story about the sea.", max_tokens=1500, request_id="late"),
            asyncio.get_running_loop().time() + 0.2,
        ):
            pass
    await wait_until_idle(engine)
