"""``/v1/ops``: the fleet's sessions and incidents, their remediation and the audit log, by ops role.

``ops_view`` reads, ``ops_operate`` also runs the actions that are not risky, ``admin`` does everything
(``cloud_infer.auth.OPS_ROLES``). What these routes return is ops data (rules, metrics, pseudonymous
sessions, actions); never a user's screen, text, titles or URLs, and who a session belongs to only
through ``reveal``, for admins, with a reason written to the audit log. ``console-tokens`` is the admin
console's exchange: its service token (``ops_console``) gets a short-lived token of a console user's role
for the subject ``console.<username>``, so the console never holds the signing secret and every action
is attributed to that user.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import caller, services
from cloud_infer.api_errors import error_responses
from cloud_infer.auth import CONSOLE_SUBJECT_PREFIX, OpsRole, Scope, TokenClaims
from cloud_infer.auth_api import TokensDep
from cloud_infer.diagnostics import fleet
from cloud_infer.diagnostics.audit import AuditEntry
from cloud_infer.diagnostics.fleet import SeriesPoints, SessionList
from cloud_infer.diagnostics.incidents import Incident
from cloud_infer.diagnostics.remediation import (
    RISKY,
    Remediation,
    RemediationRequest,
    RemediationService,
)
from cloud_infer.diagnostics.root_cause import Analyst, RootCause
from cloud_infer.diagnostics.service import DiagnosticsService
from cloud_infer.errors import BackendUnavailableError, InvalidMessageError, NotFoundError

router = APIRouter(prefix="/v1/ops", tags=["ops diagnostics"], responses=error_responses(403, 404, 503))

# A console user's token lives this long; the console exchanges again before it ends.
CONSOLE_TOKEN_TTL_S = 600
# A root-cause analysis waits behind interactive requests (it runs at background priority).
ANALYSIS_DEADLINE_S = 120.0
CONSOLE_ROLES: dict[str, OpsRole] = {"viewer": "ops_view", "operator": "ops_operate", "admin": "admin"}


def _diagnostics(connection: HTTPConnection) -> DiagnosticsService:
    found = services(connection).diagnostics
    if found is None:
        raise BackendUnavailableError("ops diagnostics is not running on this server")
    return found


def _viewer(connection: HTTPConnection) -> TokenClaims:
    return caller(connection).require_ops("ops_view")


def _operator(connection: HTTPConnection) -> TokenClaims:
    return caller(connection).require_ops("ops_operate")


def _admin(connection: HTTPConnection) -> TokenClaims:
    return caller(connection).require_ops("admin")


def _console_service(connection: HTTPConnection) -> TokenClaims:
    return caller(connection).require("ops_console")


def _remediations(connection: HTTPConnection) -> RemediationService:
    found = services(connection).remediations
    if found is None:
        raise BackendUnavailableError("remediation is not running on this server")
    return found


DiagnosticsDep = Annotated[DiagnosticsService, Depends(_diagnostics)]
RemediationsDep = Annotated[RemediationService, Depends(_remediations)]
ViewerClaims = Annotated[TokenClaims, Depends(_viewer)]
OperatorClaims = Annotated[TokenClaims, Depends(_operator)]
AdminClaims = Annotated[TokenClaims, Depends(_admin)]
ConsoleServiceClaims = Annotated[TokenClaims, Depends(_console_service)]


class IncidentList(BaseModel):
    incidents: list[Incident]


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    intact: bool
    problem: str = ""


class RevealRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=500, description="Why; written to the audit log.")


class Revealed(BaseModel):
    subject: str
    user_id: str
    session_id: str
    audit_seq: int = Field(description="The audit entry that records this reveal.")


class ConsoleTokenRequest(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    role: Literal["viewer", "operator", "admin"]


class ConsoleToken(BaseModel):
    token: str
    subject: str
    scopes: list[str]
    expires_in_s: int


IncidentId = Annotated[str, Path(pattern="^inc-[0-9a-f]{12}$")]
Subject = Annotated[str, Path(pattern="^s-[0-9a-f]{16}$")]


def _remediation_role(action: str) -> OpsRole:
    return "admin" if action in RISKY else "ops_operate"


@router.get("/sessions", response_model=SessionList)
async def list_sessions(_: ViewerClaims, diagnostics: DiagnosticsDep) -> SessionList:
    """Every session with recent metrics, by pseudonym: health, newest numbers and open incidents."""
    return SessionList(sessions=fleet.summaries(diagnostics))


@router.get("/sessions/{subject}/series", response_model=SeriesPoints)
async def session_series(
    _: ViewerClaims,
    diagnostics: DiagnosticsDep,
    subject: Subject,
    seconds: Annotated[int, Query(ge=1, le=3600)] = 300,
) -> SeriesPoints:
    """The session's recent metrics and its thin client's reports as chart columns; 404 for a session
    without recent metrics."""
    series = diagnostics.series(subject)
    if series is None:
        raise NotFoundError(f"no recent metrics of {subject}")
    return fleet.points(subject, series.samples, seconds, series.experience)


@router.post("/sessions/{subject}/reveal", response_model=Revealed)
async def reveal(
    claims: AdminClaims,
    diagnostics: DiagnosticsDep,
    remediations: RemediationsDep,
    subject: Subject,
    request: RevealRequest,
) -> Revealed:
    """Who the session belongs to, for an admin with a reason; the audit log records who asked, why and
    for which pseudonym (not the answer, since every ops role reads the audit log)."""
    session = diagnostics.session_of(subject)
    if session is None:
        raise NotFoundError(f"this server does not know whose {subject} is")
    entry = await remediations.audit.append(
        claims.user_id, "session.reveal", request.reason, subjects=[subject]
    )
    return Revealed(
        subject=subject, user_id=session.user_id, session_id=session.session_id, audit_seq=entry.seq
    )


@router.post("/console-tokens", response_model=ConsoleToken)
async def console_token(
    _: ConsoleServiceClaims, tokens: TokensDep, request: ConsoleTokenRequest
) -> ConsoleToken:
    """A short-lived token of a console user's role, for the console that signed the user in."""
    role = CONSOLE_ROLES[request.role]
    scopes: list[Scope] = ["read", role]
    subject = f"{CONSOLE_SUBJECT_PREFIX}{request.username}"
    return ConsoleToken(
        token=tokens.issue(subject, scopes, ttl_s=CONSOLE_TOKEN_TTL_S),
        subject=subject,
        scopes=sorted(scopes),
        expires_in_s=CONSOLE_TOKEN_TTL_S,
    )


@router.get("/incidents", response_model=IncidentList)
async def list_incidents(
    _: ViewerClaims,
    diagnostics: DiagnosticsDep,
    state: Annotated[str, Query(pattern="^(open|all)$")] = "open",
    q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> IncidentList:
    """The newest incidents first; ``state=all`` includes resolved ones; ``q``: only those whose rule,
    title, severity, explanations or named processes and apps have every word of it."""
    found = diagnostics.incidents(open_only=state == "open", limit=10_000)
    if q.strip():
        found = [i for i in found if fleet.matches(i, q)]
    return IncidentList(incidents=found[:limit])


@router.get("/incidents/{incident_id}", response_model=Incident)
async def get_incident(
    _: ViewerClaims,
    diagnostics: DiagnosticsDep,
    incident_id: IncidentId,
) -> Incident:
    return diagnostics.incident(incident_id)


@router.get("/incidents/{incident_id}/similar", response_model=IncidentList)
async def similar_incidents(
    _: ViewerClaims,
    diagnostics: DiagnosticsDep,
    incident_id: IncidentId,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> IncidentList:
    """Earlier incidents of the same rule, those of the same fault signature first."""
    incident = diagnostics.incident(incident_id)
    earlier = fleet.similar(incident, diagnostics.incidents(limit=10_000))
    return IncidentList(incidents=earlier[:limit])


def _analyst(connection: HTTPConnection) -> Analyst:
    found = services(connection)
    return Analyst(found.llm, found.store, deadline_s=ANALYSIS_DEADLINE_S)


AnalystDep = Annotated[Analyst, Depends(_analyst)]


@router.get("/incidents/{incident_id}/analysis", response_model=RootCause)
async def get_analysis(_: ViewerClaims, analyst: AnalystDep, incident_id: IncidentId) -> RootCause:
    """The model's last root-cause analysis of the incident; 404 when none was asked for."""
    found = await analyst.stored(incident_id)
    if found is None:
        raise NotFoundError(f"incident {incident_id!r} has not been analysed")
    return found


@router.post("/incidents/{incident_id}/analysis", response_model=RootCause)
async def analyse_incident(
    _: OperatorClaims, diagnostics: DiagnosticsDep, analyst: AnalystDep, incident_id: IncidentId
) -> RootCause:
    """Ask the language model for the root cause, citing the incident's facts ("unknown" when they do
    not support one); answered from the last analysis when the incident has not changed since."""
    return await analyst.analyse(diagnostics.incident(incident_id))


@router.post("/incidents/{incident_id}/remediations", response_model=Remediation)
async def remediate(
    claims: ViewerClaims, remediations: RemediationsDep, incident_id: IncidentId, request: RemediationRequest
) -> Remediation:
    """Dry-run, request (risky actions then wait for another admin's approval) or start a remediation;
    an operator may do so for the actions that are not risky, only an admin for the risky ones."""
    claims.require_ops(_remediation_role(request.action))
    return await remediations.request(claims.user_id, incident_id, request)


class RemediationList(BaseModel):
    remediations: list[Remediation]


@router.get("/incidents/{incident_id}/remediations", response_model=RemediationList)
async def incident_remediations(
    _: ViewerClaims, diagnostics: DiagnosticsDep, remediations: RemediationsDep, incident_id: IncidentId
) -> RemediationList:
    """What was asked for the incident, newest first, so another admin finds what awaits approval."""
    diagnostics.incident(incident_id)  # 404 for an unknown incident
    return RemediationList(remediations=remediations.of_incident(incident_id))


@router.post("/remediations/{remediation_id}/approve", response_model=Remediation)
async def approve(
    claims: ViewerClaims,
    remediations: RemediationsDep,
    remediation_id: Annotated[str, Path(pattern="^rem-[0-9a-f]{12}$")],
) -> Remediation:
    claims.require_ops(_remediation_role(remediations.get(remediation_id).action))
    return await remediations.approve(claims.user_id, remediation_id)


@router.get("/remediations/{remediation_id}", response_model=Remediation)
async def get_remediation(
    _: ViewerClaims,
    remediations: RemediationsDep,
    remediation_id: Annotated[str, Path(pattern="^rem-[0-9a-f]{12}$")],
) -> Remediation:
    return remediations.get(remediation_id)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def prometheus_metrics(_: ViewerClaims) -> Response:
    """This server's metrics in Prometheus' text format (with ``SHADOWDESK_OTEL_PROMETHEUS=true``): the
    service's own and every session's latest metrics and open incidents, by pseudonym."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/audit", response_model=AuditPage)
async def audit(
    _: ViewerClaims,
    remediations: RemediationsDep,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """Entries oldest first, and whether the whole hash chain holds."""
    try:
        await remediations.audit.verify()
        intact, problem = True, ""
    except InvalidMessageError as exc:
        intact, problem = False, str(exc)
    entries = await remediations.audit.entries(after_seq, limit)
    return AuditPage(entries=entries, intact=intact, problem=problem)
