"""The cloud server: gRPC ingest plus the HTTP read API in one event loop.

``create_grpc_server`` builds the gRPC side (tested on port 0); ``serve`` runs both until SIGTERM or
SIGINT, then stops gRPC with a grace period for in-flight batches and closes the store last.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from cloud_infer.app import build_app
from cloud_infer.auth import TokenAuthority
from cloud_infer.commands.config import CommandSettings
from cloud_infer.commands.service import CommandService
from cloud_infer.config import ServerSettings
from cloud_infer.desktop.config import DesktopSettings
from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.runtime import open_diagnostics
from cloud_infer.http_server import http_server
from cloud_infer.ingest.protocol import IngestLimits
from cloud_infer.ingest.service import IngestService
from cloud_infer.ingest.servicer import SERVICE_NAME, IngestServicer
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.factory import open_gateway
from cloud_infer.privacy.filter import PrivacyFilter
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.config import RecallSettings
from cloud_infer.recall.embedder import Embedder
from cloud_infer.recall.runtime import open_recall
from cloud_infer.revocation import Revocations
from cloud_infer.services import Services
from cloud_infer.stream.config import StreamSettings
from cloud_infer.stream.fanout import Fanout
from cloud_infer.stream.runtime import open_stream
from cloud_infer.tenancy.config import TenantLimitSettings
from cloud_infer.tenancy.ingest_budget import IngestBudget
from cloud_infer.workflows.runner_config import RunnerSettings
from cloud_infer.workflows.runtime import open_workflows
from recall_store.config import StoreSettings
from recall_store.directory import UserDirectory
from recall_store.event_log import EventLog
from recall_store.factory import open_store
from recall_store.store import ObjectStore
from recall_store.tombstones import Tombstones

logger = logging.getLogger(__name__)

_MS_PER_S = 1000
_CLOSE_MARGIN_S = 5.0


async def _close_within(part: str, closing: Awaitable[None], limit_s: float) -> None:
    try:
        async with asyncio.timeout(limit_s):
            await closing
    except TimeoutError:
        logger.warning("%s did not close within %.0f s; stopping without it", part, limit_s)


def _server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", int(settings.keepalive_time_s * _MS_PER_S)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_s * _MS_PER_S)),
        ("grpc.keepalive_permit_without_calls", 1),
        # Agents ping to notice dead links; allow it every 10 s without data instead of GOAWAY-ing them.
        ("grpc.http2.min_ping_interval_without_data_ms", 10 * _MS_PER_S),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def _credentials(settings: ServerSettings) -> grpc.ServerCredentials | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def ingest_service(
    settings: ServerSettings,
    store: ObjectStore,
    *,
    limits: TenantLimitSettings | None = None,
    tombstones: Tombstones | None = None,
    directory: UserDirectory | None = None,
    privacy: PrivacyFilter | None = None,
    stream: Fanout | None = None,
) -> IngestService:
    """Ingest over ``store``; pass the parts Recall shares (tombstones, directory) when it runs too,
    and the ``stream`` that hands every committed batch to its consumers."""
    return IngestService(
        EventLog(store),
        IngestLimits.from_settings(settings),
        IngestBudget(limits or TenantLimitSettings(), store),
        tombstones or Tombstones(store),
        directory or UserDirectory(store),
        privacy=privacy,
        stream=stream,
    )


async def create_grpc_server(
    settings: ServerSettings,
    service: IngestService,
    revocations: Revocations | None = None,
    commands: CommandService | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A started gRPC server with Ingest and standard health checking; returns it and its bound port.

    Pass the ``revocations`` the HTTP API uses, so a revocation there ends this side's tokens at once,
    and the ``commands`` it issues, so its streams carry them (without: no commands are sent).
    """
    server = grpc.aio.server(options=_server_options(settings))
    revocations = revocations or Revocations(service.event_log.store)
    servicer = IngestServicer(
        service,
        TokenAuthority.from_settings(settings),
        revocations,
        settings.hello_timeout_s,
        commands=commands,
    )
    server.add_generic_rpc_handlers((servicer.rpc_handler(),))
    # grpc_health exposes its asyncio servicer as health.aio, behind an import guard mypy cannot see.
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    credentials = _credentials(settings)
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port


async def serve(
    settings: ServerSettings,
    store_settings: StoreSettings,
    stop: asyncio.Event | None = None,
    recall_settings: RecallSettings | None = None,
    llm_settings: LLMSettings | None = None,
    stream_settings: StreamSettings | None = None,
    desktop_settings: DesktopSettings | None = None,
) -> None:
    """Run gRPC ingest and the HTTP API until ``stop`` is set (by default: SIGTERM/SIGINT) or either fails."""
    os.umask(0o077)  # users' data (LanceDB writes index files with the umask) is for this user only
    recall_settings = recall_settings or RecallSettings()
    llm_settings = llm_settings or LLMSettings()
    limits = TenantLimitSettings()
    store = open_store(store_settings)
    # One copy of the sentence encoder serves Recall's index and the gateway's local embeddings.
    embedder = Embedder(
        recall_settings.embed_threads,
        limits.embed_slice_chars,
        recall_settings.embed_max_tokens,
        recall_settings.embed_workers,
    )
    llm = open_gateway(llm_settings, embedder)
    recall, stream, workflows, diagnostics = None, None, None, None
    try:
        llm.start()
        # One PrivacyService: a PUT through the API is seen by the very next ingested batch. One
        # Tombstones: an erasure through the API stops the very next batch that it covers.
        privacy = PrivacyService(store)
        tombstones, directory, revocations = Tombstones(store), UserDirectory(store), Revocations(store)
        # Every feature reads what ingest commits through this fan-out; consumers register before start.
        stream = open_stream(stream_settings or StreamSettings(), store, directory)
        if recall_settings.enabled:
            recall = open_recall(
                recall_settings,
                store_settings,
                store,
                privacy,
                llm,
                embedder=embedder,
                tombstones=tombstones,
                directory=directory,
            )
            recall.consume(stream)
            recall.start()
        service = ingest_service(
            settings,
            store,
            limits=limits,
            tombstones=tombstones,
            directory=directory,
            privacy=PrivacyFilter(privacy, store),
            stream=stream,
        )
        # One CommandService: the API issues into the outboxes the streams send from, and the results
        # agents commit complete them.
        commands = CommandService(store, CommandSettings())
        commands.consume(stream)
        # Macro runs issue commands as their users and resume, from the store, what a restart cut short.
        workflows = open_workflows(store, commands, RunnerSettings())
        workflows.consume(stream)
        diagnostics = await open_diagnostics(
            store, DiagnosticsSettings(), settings.token_secret.get_secret_value(), commands
        )
        diagnostics.consume(stream)
        diagnostics.start()
        stream.start()
        grpc_server, grpc_port = await create_grpc_server(settings, service, revocations, commands)
        services = Services.create(
            settings,
            store,
            privacy=privacy,
            recall=recall,
            llm=llm,
            revocations=revocations,
            limits=limits,
            stream=stream,
            commands=commands,
            workflows=workflows.service,
            workflow_runs=workflows.runs,
            diagnostics=diagnostics.service,
            remediations=diagnostics.remediations,
            desktop=desktop_settings,
        )
        workflows.start()
        http = http_server(build_app(settings, services), settings)
        loop = asyncio.get_running_loop()
        # A caller that passes its own stop event (the demo) owns the signals.
        own_signals = stop is None
        stop = stop or asyncio.Event()
        if own_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        http_task = asyncio.create_task(http.serve(), name="http-server")
        stop_task = asyncio.create_task(stop.wait(), name="stop-signal")
        grpc_task = asyncio.create_task(grpc_server.wait_for_termination(), name="grpc-server")
        logger.info(
            "ingest on %s:%d (gRPC), API on %s:%d",
            settings.grpc_host,
            grpc_port,
            settings.http_host,
            settings.http_port,
        )
        try:
            await asyncio.wait({http_task, stop_task, grpc_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if own_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            logger.info("stopping: %.1fs grace for in-flight batches", settings.shutdown_grace_s)
            http.should_exit = True
            await grpc_server.stop(settings.shutdown_grace_s)
            stop_task.cancel()
            await asyncio.gather(http_task, grpc_task, stop_task, return_exceptions=True)
        if not stop.is_set():
            raise RuntimeError("a server stopped without being asked to; see the log above")
    finally:
        # Each part gets a bounded time to close, so one stuck on a model or a store call cannot hold
        # the process past its stop deadline; what it had not saved is picked up at the next start.
        limit = settings.shutdown_grace_s + _CLOSE_MARGIN_S
        if diagnostics is not None:
            await _close_within("diagnostics", diagnostics.close(), limit)
        if workflows is not None:
            await _close_within("workflows", workflows.close(), limit)  # unfinished runs stay for later
        if stream is not None:
            # Before its consumers close: calls in progress finish first.
            await _close_within("stream", stream.close(), limit)
        if recall is not None:
            await _close_within("recall", recall.close(), limit)
        await _close_within("llm", llm.close(), limit)
        embedder.close()
        await _close_within("store", store.close(), limit)
