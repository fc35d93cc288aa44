"""The downlink's test rig: a real gRPC ingest server with commands and its fan-out, over a real store
(the ``stack`` fixture of ``tests/cloud_infer/commands/conftest.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from cloud_infer.commands import CommandService, CommandSettings
from cloud_infer.config import ServerSettings
from cloud_infer.ingest.service import IngestService
from cloud_infer.privacy.filter import PrivacyFilter
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.server import create_grpc_server, ingest_service
from cloud_infer.stream import Fanout, StreamSettings
from recall_store.directory import UserDirectory
from recall_store.event_log import EventLog
from recall_store.store import ObjectStore


@dataclass
class CommandStack:
    """Ingest with the downlink over one store: what ``cloud_infer.server.serve`` wires, minus HTTP."""

    commands: CommandService
    stream: Fanout
    ingest: IngestService
    server: grpc.aio.Server
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        await self.server.stop(None)
        await self.stream.close()


async def start_stack(
    settings: ServerSettings,
    store: ObjectStore,
    command_settings: CommandSettings | None = None,
    privacy: PrivacyService | None = None,
) -> CommandStack:
    directory = UserDirectory(store)
    stream = Fanout(StreamSettings(cursor_save_interval_s=0), EventLog(store), directory)
    commands = CommandService(store, command_settings or CommandSettings())
    commands.consume(stream)
    stream.start()
    redaction = PrivacyFilter(privacy, store) if privacy is not None else None
    service = ingest_service(settings, store, directory=directory, privacy=redaction, stream=stream)
    server, port = await create_grpc_server(settings, service, commands=commands)
    return CommandStack(commands, stream, service, server, port)
