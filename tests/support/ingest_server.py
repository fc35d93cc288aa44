"""A real gRPC ingest server on port 0 over a given store (the ``ingest`` fixture of
``tests/cloud_infer/conftest.py`` starts one)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from cloud_infer.config import ServerSettings
from cloud_infer.ingest.service import IngestService
from cloud_infer.server import create_grpc_server, ingest_service
from tests.support.cloud import FaultyStore


@dataclass
class IngestServer:
    server: grpc.aio.Server
    port: int
    service: IngestService

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


async def start_ingest(settings: ServerSettings, store: FaultyStore) -> IngestServer:
    service = ingest_service(settings, store)
    server, port = await create_grpc_server(settings, service)
    return IngestServer(server, port, service)
