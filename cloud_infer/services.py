"""``Services``: everything the HTTP API serves from, in one typed object on ``app.state``.

The server builds it once (``Services.create``) around the store, the gateway and Recall that it owns
and closes, and passes it with its settings to ``cloud_infer.app.build_app``. Routers reach each part
through one ``Annotated`` dependency declared beside the router (``TimelineDep`` in
``cloud_infer.timeline.api_router``, ...), each a field of the one ``Services`` found by
``cloud_infer.api_deps.services``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud_infer.assist.service import AssistService
from cloud_infer.auth import TokenAuthority
from cloud_infer.commands.service import CommandService
from cloud_infer.config import ServerSettings
from cloud_infer.desktop.config import DesktopSettings
from cloud_infer.desktop.service import DesktopService
from cloud_infer.diagnostics.remediation import RemediationService
from cloud_infer.diagnostics.service import DiagnosticsService
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.login import LoginTickets
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.runtime import RecallRuntime
from cloud_infer.revocation import Revocations
from cloud_infer.stream.fanout import Fanout
from cloud_infer.tenancy.config import TenantLimitSettings
from cloud_infer.tenancy.requests import RequestLimiter
from cloud_infer.timeline.service import TimelineService
from cloud_infer.workflows.macros import MacroStore
from cloud_infer.workflows.runner_service import WorkflowRunService
from cloud_infer.workflows.service import WorkflowService
from recall_store.event_log import EventLog
from recall_store.store import ObjectStore


@dataclass(frozen=True, slots=True)
class Services:
    store: ObjectStore
    tokens: TokenAuthority
    revocations: Revocations
    logins: LoginTickets
    limits: RequestLimiter
    privacy: PrivacyService
    timeline: TimelineService
    llm: LLMGateway
    assist: AssistService
    commands: CommandService  # the downlink: shared with the gRPC side when ingest runs in this process
    recall: RecallRuntime | None  # None: Recall is off and its routes answer 503
    desktop: DesktopService  # the thin client's desktops: where each is, who may open it
    stream: Fanout | None = None  # the committed stream's fan-out, when ingest runs in this process
    # Recording, compiling and macros; records only when it consumes the stream ingest commits to.
    workflows: WorkflowService | None = None
    # Runs of macros on the users' desktops (the runner); the server starts and closes it.
    workflow_runs: WorkflowRunService | None = None
    # Ops diagnostics, when it consumes the committed stream; None: its routes answer 503.
    diagnostics: DiagnosticsService | None = None
    # Governed fixes of its incidents through the downlink, and the audit log; the server closes it.
    remediations: RemediationService | None = None

    @classmethod
    def create(
        cls,
        settings: ServerSettings,
        store: ObjectStore,
        *,
        privacy: PrivacyService | None = None,
        recall: RecallRuntime | None = None,
        llm: LLMGateway | None = None,
        revocations: Revocations | None = None,
        limits: TenantLimitSettings | None = None,
        stream: Fanout | None = None,
        commands: CommandService | None = None,
        workflows: WorkflowService | None = None,
        workflow_runs: WorkflowRunService | None = None,
        diagnostics: DiagnosticsService | None = None,
        remediations: RemediationService | None = None,
        desktop: DesktopSettings | None = None,
    ) -> Services:
        """Services over ``store``; pass the parts ingest shares (privacy cache, revocations).

        Without ``llm`` the features that need a model answer 503.
        """
        gateway = llm or LLMGateway(LLMSettings(backend="none"), None)
        commands = commands or CommandService(store)
        known = commands  # a name of its own: mypy does not narrow a parameter captured by a closure

        async def known_sessions(user_id: str) -> list[str]:
            return [session_id for session_id, _ in await known.sessions(user_id)]

        return cls(
            store=store,
            tokens=TokenAuthority.from_settings(settings),
            revocations=revocations or Revocations(store),
            logins=LoginTickets(),
            limits=RequestLimiter(limits or TenantLimitSettings()),
            privacy=privacy or PrivacyService(store),
            timeline=TimelineService(EventLog(store)),
            llm=gateway,
            assist=AssistService(recall.service if recall else None, gateway),
            commands=commands,
            recall=recall,
            desktop=DesktopService(desktop or DesktopSettings(), known_sessions),
            stream=stream,
            workflows=workflows or WorkflowService(store, commands),
            workflow_runs=workflow_runs or WorkflowRunService(store, commands, macros=MacroStore(store)),
            diagnostics=diagnostics,
            remediations=remediations,
        )
