"""Routes of the LLM gateway that callers use directly: their own usage, and embeddings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from cloud_infer.api_deps import ReadClaims
from cloud_infer.api_errors import ErrorResponse
from cloud_infer.llm.accounting import UsageReport
from cloud_infer.llm.gateway import LLMGateway

router = APIRouter(
    prefix="/v1/llm",
    tags=["llm"],
    responses={status: {"model": ErrorResponse} for status in (400, 401, 429, 502, 503, 504)},
)


class EmbeddingsRequest(BaseModel):
    texts: list[Annotated[str, Field(max_length=8000)]] = Field(min_length=1, max_length=64)


class EmbeddingsResponse(BaseModel):
    vectors: list[list[float]]


def _gateway(app_state: Any) -> LLMGateway:
    gateway = app_state.llm
    assert isinstance(gateway, LLMGateway)
    return gateway


@router.get("/usage", response_model=UsageReport)
async def usage(request: Request, claims: ReadClaims) -> UsageReport:
    """The caller's requests and tokens since this server started, by feature."""
    return _gateway(request.app.state).usage(claims.user_id)


@router.post("/embeddings", response_model=EmbeddingsResponse)
async def embeddings(request: Request, claims: ReadClaims, body: EmbeddingsRequest) -> EmbeddingsResponse:
    vectors = await _gateway(request.app.state).embed(claims.user_id, body.texts, feature="api.embeddings")
    return EmbeddingsResponse(vectors=vectors)
