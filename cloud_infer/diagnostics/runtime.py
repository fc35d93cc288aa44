"""Builds and owns ops diagnostics for one server: detection and incidents, and governed remediation.

Detection reads the committed stream as the consumer ``diagnostics`` (``consume``); remediation sends
its commands through the one ``CommandService`` and writes the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud_infer.commands.service import CommandService
from cloud_infer.diagnostics.audit import AuditLog
from cloud_infer.diagnostics.config import DiagnosticsSettings
from cloud_infer.diagnostics.remediation import RemediationService
from cloud_infer.diagnostics.service import DiagnosticsService, pseudonym_key
from cloud_infer.stream.fanout import Fanout
from recall_store.store import ObjectStore


@dataclass
class DiagnosticsRuntime:
    service: DiagnosticsService
    remediations: RemediationService

    def consume(self, stream: Fanout) -> None:
        """Judge every committed batch (register before the stream starts)."""
        self.service.consume(stream)

    def start(self) -> None:
        """Nothing runs in the background: detection runs as the stream delivers, remediations as asked."""

    async def close(self) -> None:
        """Stop the remediations in progress; the audit log holds every step already taken."""
        await self.remediations.close()


async def open_diagnostics(
    store: ObjectStore, settings: DiagnosticsSettings, token_secret: str, commands: CommandService
) -> DiagnosticsRuntime:
    """Diagnostics over ``store`` with the incidents stored before a restart loaded (before any batch is
    judged, so none is lost to the load); pseudonyms are keyed by the server's ``token_secret``."""
    service = DiagnosticsService(store, settings, pseudonym_key(token_secret))
    await service.load()
    return DiagnosticsRuntime(service, RemediationService(service, commands, AuditLog(store)))
