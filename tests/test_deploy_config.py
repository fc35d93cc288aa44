"""The example vLLM fleet in deploy/vllm-fleet: its env file is real configuration, and compose agrees."""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from cloud_infer.config import ServerSettings
from cloud_infer.llm.config import LLMSettings

REPO = Path(__file__).resolve().parents[1]
FLEET = REPO / "deploy" / "vllm-fleet"
ENV_FILE = FLEET / "cloud_infer.env"


def env_entries() -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in ENV_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert key not in entries, f"{key} is set twice"
            entries[key] = value
    return entries


def known_settings() -> set[str]:
    sections: list[tuple[str, type[BaseSettings]]] = runpy.run_path(str(REPO / "scripts" / "config_docs.py"))[
        "SECTIONS"
    ]
    names = set()
    for _, cls in sections:
        prefix = cls.model_config.get("env_prefix", "")
        names |= {f"{prefix}{name}".upper() for name in cls.model_fields}
    return names


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((FLEET / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def vllm_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("entrypoint") == ["vllm", "serve"]
    }


def option(args: list[str], name: str) -> str | None:
    """The value of ``--name=value`` or ``--name value`` in a command line."""
    for index, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name:
            return args[index + 1]
    return None


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The process environment outranks the env file; keep a developer's own settings out of this test.
    for key in list(os.environ):
        if key.startswith("SHADOWDESK_"):
            monkeypatch.delenv(key)


def test_env_file_loads_as_the_openai_fleet(clean_env: None) -> None:
    settings = LLMSettings(_env_file=ENV_FILE)
    assert settings.backend == "openai"
    assert settings.openai_endpoints == [
        "http://vllm-0:8000/v1",
        "http://vllm-1:8000/v1",
        "http://vllm-2:8000/v1",
    ]
    assert settings.openai_model == "qwen2.5-7b-instruct"
    assert settings.embeddings_backend == "local"


def test_every_key_of_the_env_file_is_a_real_setting() -> None:
    unknown = set(env_entries()) - known_settings()
    assert not unknown, f"not a setting of any settings class: {sorted(unknown)}"


def test_compose_replicas_are_the_env_file_endpoints() -> None:
    services = vllm_services()
    assert len(services) >= 2
    endpoints = []
    for name, service in services.items():
        args = [str(arg) for arg in service["command"]]
        endpoints.append(f"http://{name}:{option(args, '--port')}/v1")
        assert option(args, "--served-model-name") == env_entries()["SHADOWDESK_LLM_OPENAI_MODEL"]
        assert "--enable-prefix-caching" in args
        assert option(args, "--max-model-len") is not None
        assert option(args, "--gpu-memory-utilization") is not None
        assert "/health" in " ".join(service["healthcheck"]["test"])
    assert endpoints == env_entries()["SHADOWDESK_LLM_OPENAI_ENDPOINTS"].split(",")


def test_each_replica_has_its_own_gpu() -> None:
    gpus = [
        tuple(device["device_ids"])
        for service in vllm_services().values()
        for device in service["deploy"]["resources"]["reservations"]["devices"]
    ]
    assert len(gpus) == len(vllm_services())
    assert len(set(gpus)) == len(gpus), f"replicas share a GPU: {gpus}"


def test_server_service_reads_the_env_file() -> None:
    server = compose()["services"]["shadowdesk"]
    assert server["command"] == ["shadowdesk", "server"]
    assert server["env_file"] == [ENV_FILE.name]
    assert (FLEET / server["build"]["context"] / server["build"]["dockerfile"]).is_file()


def test_the_example_serves_tls_on_both_ports_with_a_real_secret(
    clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHADOWDESK_TOKEN_SECRET", "x" * 64)  # compose passes it from the host
    settings = ServerSettings(_env_file=ENV_FILE)  # type: ignore[call-arg]
    assert settings.environment == "production" and settings.tls and not settings.insecure_no_tls
    server = compose()["services"]["shadowdesk"]
    mounted = {f"/run/secrets/{name}" for name in server["secrets"]}
    assert {str(settings.tls_cert), str(settings.tls_key)} == mounted
    assert set(server["secrets"]) <= set(compose()["secrets"])
    assert "https://" in " ".join(server["healthcheck"]["test"])
