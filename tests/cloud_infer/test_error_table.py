"""One error table: every edge (HTTP, websockets, gRPC, the agent's retries, the docs) answers from it.

``cloud_infer.errors.ERRORS`` is the table. These tests keep every error class in it, keep the edges from
inventing codes of their own, keep the agent's retryable statuses equal to the table's, and keep
docs/protocol.md#errors the same table; the last ones show HTTP and the websockets answering one code
for one error on a real server.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

import cloud_infer.server  # noqa: F401  (every error class of the cloud is defined once this is imported)
from cloud_infer.api_errors import exception_response
from cloud_infer.app import build_app
from cloud_infer.auth import issue_token
from cloud_infer.config import ServerSettings
from cloud_infer.errors import ERRORS, CloudInferError, ErrorCode, error_code
from cloud_infer.live_socket import error_fields
from cloud_infer.llm.errors import LLMError
from cloud_infer.services import Services
from cloud_infer.workflows.errors import Problem, ProgramInvalidError
from recall_store.errors import StoreError
from session_agent.errors import CLOUD_RETRYABLE, RETRYABLE_CODES, TRANSPORT_FAILURES
from tests.support.cloud import SECRET, FaultyStore, read_auth, serve_api

REPO = Path(__file__).resolve().parents[2]
_BASES = (CloudInferError, LLMError, StoreError)


def _subclasses(base: type[BaseException]) -> Iterator[type[BaseException]]:
    for sub in base.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _sample(kind: type[BaseException]) -> BaseException:
    if kind is ProgramInvalidError:  # carries the document's problems, for inline display
        return ProgramInvalidError([Problem(path="steps.0", message="boom")])
    try:
        return kind("boom")
    except TypeError:
        return kind("boom", 2.0)  # the rate-limited errors carry retry_after_s


ERROR_CLASSES = sorted({sub for base in _BASES for sub in _subclasses(base)}, key=lambda k: k.__qualname__)


def test_every_code_has_a_row_for_every_edge() -> None:
    assert set(ERRORS) == set(ErrorCode)
    for code, edges in ERRORS.items():
        assert 400 <= edges.http < 600, code
        assert edges.websocket in (1003, *range(1007, 1015), *range(4000, 5000)), code
        assert edges.grpc is not grpc.StatusCode.OK, code
    statuses = [edges.http for edges in ERRORS.values()]
    assert len(statuses) == len(set(statuses)), "an HTTP status must name one code"


@pytest.mark.parametrize("kind", ERROR_CLASSES, ids=lambda k: k.__qualname__)
def test_every_error_class_has_a_code(kind: type[BaseException]) -> None:
    """A new error class must get a row (or subclass one that has), not fall through to ``internal``."""
    assert error_code(kind) is not ErrorCode.INTERNAL


@pytest.mark.parametrize("kind", ERROR_CLASSES, ids=lambda k: k.__qualname__)
def test_http_and_websockets_answer_the_same_code(kind: type[BaseException]) -> None:
    error = _sample(kind)
    response = exception_response(error)
    body = json.loads(bytes(response.body))
    assert body["code"] == error_fields(error)["code"] == error_code(error)
    assert response.status_code == ERRORS[error_code(error)].http


def test_one_grpc_status_is_either_retried_or_not() -> None:
    retryable: dict[grpc.StatusCode, set[bool]] = {}
    for edges in ERRORS.values():
        retryable.setdefault(edges.grpc, set()).add(edges.retryable)
    assert all(len(flags) == 1 for flags in retryable.values()), retryable


def test_the_agent_retries_exactly_what_the_table_says() -> None:
    table = {edges.grpc for edges in ERRORS.values()}
    assert {edges.grpc for edges in ERRORS.values() if edges.retryable} == CLOUD_RETRYABLE
    assert not TRANSPORT_FAILURES & table, "a status the cloud sends is classified by the table"
    assert RETRYABLE_CODES == CLOUD_RETRYABLE | TRANSPORT_FAILURES
    assert not RETRYABLE_CODES & {edges.grpc for edges in ERRORS.values() if not edges.retryable}


def test_no_edge_writes_a_code_of_its_own() -> None:
    """``{"code": "..."}`` with a literal anywhere but the table is how two tables start."""
    found = []
    for path in sorted((REPO / "cloud_infer").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    code = isinstance(key, ast.Constant) and key.value == "code"
                    if code and isinstance(value, ast.Constant) and isinstance(value.value, str):
                        found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, found


def test_the_sidebar_knows_only_codes_of_the_table() -> None:
    scripts = (REPO / "cloud_infer" / "sidebar" / "static").glob("*.js")
    compared = re.compile(r"(?<!typeof )\b\w+\.code\s*===?\s*\"(\w+)\"")
    used = {m for path in scripts for m in compared.findall(path.read_text())}
    assert used and used <= set(ErrorCode)


def test_the_protocol_doc_is_the_table() -> None:
    doc = (REPO / "docs" / "protocol.md").read_text()
    section = doc.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    row = re.compile(r"^\| `(\w+)` \| (\d+) \| (\d+) \| `(\w+)` \| (yes|no) \|", re.MULTILINE)
    documented = {m[0]: (int(m[1]), int(m[2]), m[3], m[4] == "yes") for m in row.findall(section)}
    assert documented == {
        code.value: (edges.http, edges.websocket, edges.grpc.name, edges.retryable)
        for code, edges in ERRORS.items()
    }


@pytest.fixture
async def api(settings: ServerSettings, store: FaultyStore) -> AsyncIterator[httpx.AsyncClient]:
    """Recall off and no model: what a request needs is unavailable on every edge."""
    app = build_app(settings, Services.create(settings, store))
    async with serve_api(app) as client:
        yield client


def _ws_url(client: httpx.AsyncClient, path: str) -> str:
    return f"ws://127.0.0.1:{client.base_url.port}{path}"


def _protocols(user: str) -> list[Subprotocol]:
    return [Subprotocol("shadowdesk.v1"), Subprotocol(f"bearer.{issue_token(SECRET, user, 'read')}")]


async def test_one_error_is_one_code_over_http_and_websockets(api: httpx.AsyncClient) -> None:
    http = await api.post("/v1/llm/embeddings", json={"texts": ["hi"]}, headers=read_auth("ann"))
    assert (http.status_code, http.json()["code"]) == (503, "unavailable")
    invalid = await api.post("/v1/llm/embeddings", json={"texts": []}, headers=read_auth("ann"))
    assert (invalid.status_code, invalid.json()["code"]) == (400, "invalid_argument")

    async with websockets.connect(_ws_url(api, "/v1/assist/live"), subprotocols=_protocols("ann")) as socket:
        assert json.loads(await socket.recv())["type"] == "context"
        await socket.send(json.dumps({"type": "run", "id": "1", "action": "summarize", "text": "a note"}))
        error = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert (error["type"], error["id"], error["code"]) == ("error", "1", "unavailable")
        await socket.send(json.dumps({"type": "run", "id": "2", "action": "sing"}))
        error = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert (error["id"], error["code"]) == ("2", "invalid_argument")

    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(_ws_url(api, "/v1/recall/live"), subprotocols=_protocols("ann")):
            pass
    assert refused.value.response.status_code == 503
    assert json.loads(refused.value.response.body or b"{}")["code"] == "unavailable"
