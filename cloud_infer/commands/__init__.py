"""The downlink: the cloud commands agents in their desktops (see docs/protocol.md, "Commands").

``CommandService`` is the Python API features use; ``api_router`` the HTTP and websocket API; the
ingest servicer sends each connected stream its pending commands through ``CommandService.connect``.
"""

from __future__ import annotations

from cloud_infer.commands.config import CommandSettings
from cloud_infer.commands.records import CommandRecord, CommandStatus, Issuer, IssuerKind
from cloud_infer.commands.registry import Downlink, LiveSessions
from cloud_infer.commands.service import CommandService, SessionRef, Subscription

__all__ = [
    "CommandRecord",
    "CommandService",
    "CommandSettings",
    "CommandStatus",
    "Downlink",
    "Issuer",
    "IssuerKind",
    "LiveSessions",
    "SessionRef",
    "Subscription",
]
