"""Fixtures of the LLM tests: the packaged GGUF model, in-process or behind llama.cpp's server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_infer.llm.config import packaged_model_path
from cloud_infer.llm.embedded import EmbeddedLlama
from harness.llama_server import LlamaServer, running_llama_server


@pytest.fixture(scope="session")
def model_path() -> Path:
    return packaged_model_path()


@pytest.fixture(scope="module")
def embedded(model_path: Path) -> Iterator[EmbeddedLlama]:
    """One loaded model per module: loading is the slow part, and every request leaves it reusable."""
    llm = EmbeddedLlama(model_path, context_tokens=1024, threads=1)
    yield llm
    asyncio.run(llm.close())


@pytest.fixture(scope="module")
def llama_server(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    with running_llama_server(model_path, tmp_path_factory.mktemp("llama-server") / "server.log") as server:
        yield server
