"""The gateway's HTTP routes and Assist's context route on a real uvicorn, with the real models."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import httpx
import pytest

from cloud_infer.app import build_app
from cloud_infer.config import ServerSettings
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.factory import open_gateway
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.recall.embedder import Embedder
from cloud_infer.services import Services
from tests.support.cloud import FaultyStore, read_auth, serve_api


@pytest.fixture(params=["local", "none"])
async def gateway(request: pytest.FixtureRequest) -> AsyncIterator[LLMGateway]:
    """A gateway with the real e5 encoder for embeddings, and one without embeddings."""
    encoder = Embedder() if request.param == "local" else None
    if encoder is not None:
        encoder.encode_now(["warm up"])  # loading the model is not what these tests time
    llm = open_gateway(LLMSettings(backend="none", embeddings_backend=request.param), encoder)
    yield llm
    await llm.close()


@pytest.fixture
async def api(
    settings: ServerSettings, store: FaultyStore, gateway: LLMGateway
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_api(build_app(settings, Services.create(settings, store, llm=gateway))) as client:
        yield client


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


async def test_embeddings_and_usage_are_the_callers_own(api: httpx.AsyncClient, gateway: LLMGateway) -> None:
    texts = ["invoice total due", "lighthouse keeper story", "the amount owed on the bill"]
    response = await api.post("/v1/llm/embeddings", json={"texts": texts}, headers=read_auth("alice"))
    if not gateway.embeddings_available:
        assert response.status_code == 503
        assert response.json() == {"code": "unavailable", "message": "no embedding model is configured"}
        return
    assert response.status_code == 200, response.text
    vectors = response.json()["vectors"]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert cosine(vectors[0], vectors[2]) > cosine(vectors[0], vectors[1])
    usage = (await api.get("/v1/llm/usage", headers=read_auth("alice"))).json()
    assert usage["embedded_texts"] == 3
    assert usage["features"]["api.embeddings"]["requests"] == 1
    assert (await api.get("/v1/llm/usage", headers=read_auth("bob"))).json()["requests"] == 0
    assert (await api.get("/v1/llm/usage")).status_code == 401


async def test_bad_embedding_requests_are_refused_clearly(api: httpx.AsyncClient) -> None:
    auth = read_auth("alice")
    assert (await api.post("/v1/llm/embeddings", json={"texts": []}, headers=auth)).status_code == 400
    too_long = {"texts": ["x" * 8001]}
    refused = await api.post("/v1/llm/embeddings", json=too_long, headers=auth)
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_argument"


async def test_assist_context_without_recall_is_unavailable_not_an_error(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/assist/context", headers=read_auth("alice"))
    assert response.status_code == 200
    assert response.json()["available"] is False
