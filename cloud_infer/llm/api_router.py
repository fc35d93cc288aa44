"""Routes of the LLM gateway that callers use directly: their own usage, and embeddings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import ReadClaims, services
from cloud_infer.api_errors import error_responses
from cloud_infer.llm.accounting import UsageReport
from cloud_infer.llm.gateway import LLMGateway

router = APIRouter(
    prefix="/v1/llm",
    tags=["llm"],
    responses=error_responses(502),
)


def _llm(connection: HTTPConnection) -> LLMGateway:
    return services(connection).llm


LLMDep = Annotated[LLMGateway, Depends(_llm)]


class EmbeddingsRequest(BaseModel):
    texts: list[Annotated[str, Field(max_length=4000)]] = Field(min_length=1, max_length=64)


class EmbeddingsResponse(BaseModel):
    vectors: list[list[float]]


@router.get("/usage", response_model=UsageReport)
async def usage(gateway: LLMDep, claims: ReadClaims) -> UsageReport:
    """The caller's requests and tokens since this server started, by feature."""
    return gateway.usage(claims.user_id)


@router.post("/embeddings", response_model=EmbeddingsResponse)
async def embeddings(gateway: LLMDep, claims: ReadClaims, body: EmbeddingsRequest) -> EmbeddingsResponse:
    """Vectors of up to 64 texts, computed in the caller's turns on the shared model."""
    vectors = await gateway.embed(claims.user_id, body.texts, feature="api.embeddings")
    return EmbeddingsResponse(vectors=vectors)
