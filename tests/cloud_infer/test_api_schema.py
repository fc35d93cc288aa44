"""Schemathesis over the HTTP API's own OpenAPI schema, against a real uvicorn with real tokens.

Every operation gets generated requests (valid and invalid) with a read+manage token and with a
read-only token; each answer must be documented: no 5xx, a declared status code and content type, and a
body that matches the declared schema. The app is built as the server builds it, with Recall on the real
embedding model, and served over HTTP so that ``cloud_infer.http_guard`` answers as in production.

Reads run as a user with a short history (timeline spans, a frame, indexed moments), so that answers
with content are checked too, not only empty ones. Every other method runs as a fresh user per case: a
case may revoke its tokens, erase its history or change its privacy settings, and that must not turn the
cases after it into 401s or empty answers. The local store only: the MinIO backend has its own contract
suite, and this run must stay short enough for every CI run.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cloud_infer.app import build_app
from cloud_infer.commands import CommandService
from cloud_infer.config import ServerSettings
from cloud_infer.diagnostics.audit import AuditLog
from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.remediation import RemediationService
from cloud_infer.diagnostics.service import DiagnosticsService, pseudonym_key
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.llm.local_embeddings import LocalEmbeddings
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.embedder import Embedder
from cloud_infer.recall.ocr import OcrEngine
from cloud_infer.recall.runtime import RecallRuntime, open_recall
from cloud_infer.services import Services
from cloud_infer.tenancy.config import TenantLimitSettings
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.config import StoreSettings
from recall_store.event_log import EventLog
from recall_store.factory import open_store
from recall_store.local import LocalObjectStore
from tests.support.cloud import NS, SECRET, focus, frame, manage_auth, metrics, read_auth, serve_api

pytestmark = pytest.mark.slow

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
START_TIMEOUT_S = 120.0  # the models load, and the history is indexed, before the server answers
REQUEST_TIMEOUT_S = 30.0
SESSION = "desk-schema"
# Far above what this run sends: a 429 would hide the route behind it (the limits have their own tests).
UNLIMITED = 1_000_000
RATES = ("_per_minute", "_per_hour")
Auth = Callable[[str], dict[str, str]]


def server_settings() -> ServerSettings:
    return ServerSettings(
        environment="local", token_secret=SecretStr(SECRET), grpc_port=0, shutdown_grace_s=1.0
    )


def served_schema() -> dict[str, Any]:
    """The schema the app serves in local mode: built from its routes alone, no service is called."""
    unused = LocalObjectStore(Path("unused-store"), workers=1)
    return build_app(server_settings(), Services.create(server_settings(), unused)).openapi()


# Schemathesis makes one test per operation at collection, so it needs the schema at import.
API_SCHEMA = served_schema()
schema = schemathesis.openapi.from_dict(API_SCHEMA)


@dataclass(frozen=True, slots=True)
class LiveApi:
    base_url: str
    user: str  # has a history: see ``history``


def history(t0: int) -> list[pb.Event]:
    """A few minutes at a desktop: a terminal with text and a frame, then a browser page, then metrics."""
    return [
        focus(1, t0, "xterm", "kafka-configs"),
        pb.Event(
            seq=2,
            time_unix_nano=t0 + NS,
            text=pb.TextSnapshot(
                window_id=7, app_id="xterm", source="atspi", text="Kafka broker settings\nlog retention 168"
            ),
        ),
        frame(3, t0 + 2 * NS),
        pb.Event(
            seq=4,
            time_unix_nano=t0 + 3 * NS,
            clipboard=pb.ClipboardText(app_id="xterm", text="segment.bytes"),
        ),
        focus(5, t0 + 60 * NS, "chromium", "Invoice INV-2041", window_id=9),
        pb.Event(
            seq=6,
            time_unix_nano=t0 + 61 * NS,
            url=pb.UrlVisit(app_id="chromium", url="https://billing.example.com/inv/2041", title="Invoice"),
        ),
        metrics(7, t0 + 120 * NS),
    ]


async def record_history(recall: RecallRuntime, user: str) -> None:
    """What ingest does with a batch: store it, then index it."""
    events = history(time.time_ns() - 600 * NS)
    await EventLog(recall.service.store).append(user, SESSION, events)
    await recall.pipeline.handle(user, SESSION, events)


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """The app with Recall on a real uvicorn, in its own thread and loop: the schemathesis calls block."""
    root = tmp_path_factory.mktemp("api-schema")
    user = f"schema-{uuid.uuid4().hex[:12]}@example.com"
    base_urls: list[str] = []
    failure: list[BaseException] = []
    ready = threading.Event()
    running: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def serve() -> None:
        store_settings = StoreSettings(backend="local", local_root=root / "store", workers=4)
        store = open_store(store_settings)
        embedder = Embedder()
        # Search embeds the query: load the model once here, not inside a request's deadline.
        await asyncio.to_thread(embedder.encode_now, ["warm up"])
        llm = LLMGateway(LLMSettings(backend="none"), None, LocalEmbeddings(embedder))
        privacy = PrivacyService(store)
        recall = open_recall(RecallSettings(), store_settings, store, privacy, llm, embedder, [OcrEngine()])
        limits = TenantLimitSettings.model_validate(
            {name: UNLIMITED for name in TenantLimitSettings.model_fields if name.endswith(RATES)}
        )
        # Ops diagnostics too: a user's /v1/me/health answers from it (no incident: an empty list, 404s).
        commands = CommandService(store)
        diagnostics = DiagnosticsService(store, DiagnosticsSettings(), pseudonym_key(SECRET))
        remediations = RemediationService(diagnostics, commands, AuditLog(store))
        services = Services.create(
            server_settings(),
            store,
            privacy=privacy,
            recall=recall,
            llm=llm,
            limits=limits,
            commands=commands,
            diagnostics=diagnostics,
            remediations=remediations,
        )
        app = build_app(server_settings(), services)
        assert app.openapi() == API_SCHEMA, "the schema under test is not the one the app serves"
        stop = asyncio.Event()
        running.append((asyncio.get_running_loop(), stop))
        try:
            await record_history(recall, user)
            async with serve_api(app) as client:
                base_urls.append(str(client.base_url).rstrip("/"))
                ready.set()
                await stop.wait()
        finally:
            await remediations.close()
            await recall.close()
            embedder.close()
            await llm.close()
            await store.close()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:
            failure.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="api-schema-server")
    thread.start()
    ready.wait(START_TIMEOUT_S)
    try:
        if failure:
            raise failure[0]
        assert base_urls, f"the API did not start within {START_TIMEOUT_S:g} s"
        yield LiveApi(base_urls[0], user)
    finally:
        for loop, stop in running:
            loop.call_soon_threadsafe(stop.set)
        thread.join(30)
    assert not thread.is_alive(), "the API did not stop within 30 s"
    if failure:
        raise failure[0]


@pytest.fixture(scope="module", params=[manage_auth, read_auth], ids=["read+manage", "read-only"])
def auth(request: pytest.FixtureRequest) -> Auth:
    """The authorization headers of a user's token, for each scope set in turn."""
    headers: Auth = request.param
    return headers


def call(case: schemathesis.Case[Any], live_api: LiveApi, headers: dict[str, str]) -> schemathesis.Response:
    return case.call_and_validate(
        base_url=live_api.base_url, headers=headers, checks=CHECKS, timeout=REQUEST_TIMEOUT_S
    )


# Bounded and repeatable for CI: a fixed number of examples per operation, derandomized, no deadline
# (a search on the real model is slow on a busy CI machine, and that is not what this checks).
@schema.parametrize()
@settings(
    max_examples=30,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any], live_api: LiveApi, auth: Auth
) -> None:
    reads = case.method.upper() == "GET"
    user = live_api.user if reads else f"schema-{uuid.uuid4().hex[:12]}@example.com"
    call(case, live_api, auth(user))


@pytest.mark.parametrize("auth_kind", [manage_auth, read_auth], ids=["read+manage", "read-only"])
def test_answers_with_content_match_the_schema(live_api: LiveApi, auth_kind: Auth) -> None:
    """The history's moment, frame, timeline and export: the answers generated requests rarely reach."""
    headers = auth_kind(live_api.user)

    search = call(schema["/v1/recall/search"]["GET"].Case(query={"q": "kafka broker"}), live_api, headers)
    hits = search.json()["hits"]
    assert search.status_code == 200 and hits, "the recorded history is not searchable"
    moment = call(
        schema["/v1/recall/moments/{moment_id}"]["GET"].Case(
            path_parameters={"moment_id": hits[0]["moment_id"]}, query={"q": "kafka"}
        ),
        live_api,
        headers,
    )
    assert moment.status_code == 200, moment.text

    timeline = call(schema["/v1/timeline"]["GET"].Case(), live_api, headers)
    spans = timeline.json()["spans"]
    assert [s["app_id"] for s in spans] == ["xterm", "chromium"]
    session, name = spans[0]["frames"][0]["url"].removeprefix("/v1/frames/").split("/")
    for thumb in (False, True):
        image = call(
            schema["/v1/frames/{session_id}/{name}"]["GET"].Case(
                path_parameters={"session_id": session, "name": name}, query={"thumb": thumb}
            ),
            live_api,
            headers,
        )
        assert image.status_code == 200 and image.content, image.text

    export = call(schema["/v1/recall/export"]["GET"].Case(), live_api, headers)
    assert export.status_code == 200 and export.content.startswith(b"PK"), export.text[:200]
