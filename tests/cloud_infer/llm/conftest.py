"""Fixtures of the LLM client tests: the packaged GGUF model, in-process or behind llama.cpp's server."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cloud_infer.llm.client import ChatMessage, LLMClient
from cloud_infer.llm.config import packaged_model_path
from cloud_infer.llm.embedded import EmbeddedLlama
from tests.support.minio import free_port

SERVER_START_DEADLINE_S = 60.0
SERVED_MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def model_path() -> Path:
    return packaged_model_path()


@pytest.fixture(scope="module")
def embedded(model_path: Path) -> Iterator[EmbeddedLlama]:
    """One loaded model per module: loading is the slow part, and every request leaves it reusable."""
    llm = EmbeddedLlama(model_path, context_tokens=1024, threads=1, timeout_s=30.0)
    yield llm
    asyncio.run(llm.close())


class LlamaServer:
    """``python -m llama_cpp.server`` on a free port, serving the packaged model."""

    def __init__(self, model_path: Path, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "llama_cpp.server",
                "--model", str(model_path),
                "--model_alias", SERVED_MODEL,
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--n_ctx", "1024",
                "--n_threads", "1",
                "--n_threads_batch", "1",
                "--interrupt_requests", "False",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"llama_cpp.server exited during start-up; log:\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.base_url}/models", timeout=1) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"llama_cpp.server not ready within {timeout_s} s; log:\n{self.log()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture(scope="module")
def llama_server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    server = LlamaServer(model_path, tmp_path_factory.mktemp("llama-server") / "server.log")
    try:
        server.wait_ready(SERVER_START_DEADLINE_S)
        yield server
    finally:
        server.stop()


def ask(text: str) -> list[ChatMessage]:
    return [ChatMessage("user", text)]


async def collect(llm: LLMClient, messages: list[ChatMessage], **options: float) -> list[str]:
    max_tokens = int(options.pop("max_tokens", 32))
    return [delta async for delta in llm.stream_chat(messages, max_tokens=max_tokens, **options)]


async def first_delta_after(llm: LLMClient, messages: list[ChatMessage]) -> tuple[str, float]:
    """The first delta of a fresh request and the seconds it took to arrive."""
    started = time.monotonic()
    stream = llm.stream_chat(messages, max_tokens=4, deadline_s=20.0)
    try:
        delta = await anext(aiter(stream))
    finally:
        await stream.aclose()  # type: ignore[attr-defined]  # our clients return async generators
    return delta, time.monotonic() - started


async def take(stream: AsyncIterator[str], count: int) -> list[str]:
    """The first ``count`` deltas; the stream is left open, mid-generation."""
    return [await anext(stream) for _ in range(count)]


async def consume_forever(stream: AsyncIterator[str], started: asyncio.Event) -> None:
    async for _ in stream:
        started.set()
