"""``/v1/ops``: the fleet's incidents, their remediation and the audit log, for ``admin`` tokens only.

What these routes return is ops data (rules, metrics, pseudonymous sessions, actions); never a user's
screen, text, titles or who a session belongs to.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import caller, services
from cloud_infer.api_errors import error_responses
from cloud_infer.auth import TokenClaims
from cloud_infer.diagnostics.audit import AuditEntry
from cloud_infer.diagnostics.incidents import Incident
from cloud_infer.diagnostics.remediation import Remediation, RemediationRequest, RemediationService
from cloud_infer.diagnostics.service import DiagnosticsService
from cloud_infer.errors import BackendUnavailableError, InvalidMessageError

router = APIRouter(prefix="/v1/ops", tags=["ops diagnostics"], responses=error_responses(403, 404, 503))


def _diagnostics(connection: HTTPConnection) -> DiagnosticsService:
    found = services(connection).diagnostics
    if found is None:
        raise BackendUnavailableError("ops diagnostics is not running on this server")
    return found


def _admin(connection: HTTPConnection) -> TokenClaims:
    return caller(connection).require("admin")


def _remediations(connection: HTTPConnection) -> RemediationService:
    found = services(connection).remediations
    if found is None:
        raise BackendUnavailableError("remediation is not running on this server")
    return found


DiagnosticsDep = Annotated[DiagnosticsService, Depends(_diagnostics)]
RemediationsDep = Annotated[RemediationService, Depends(_remediations)]
AdminClaims = Annotated[TokenClaims, Depends(_admin)]


class IncidentList(BaseModel):
    incidents: list[Incident]


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    intact: bool
    problem: str = ""


IncidentId = Annotated[str, Path(pattern="^inc-[0-9a-f]{12}$")]


@router.get("/incidents", response_model=IncidentList)
async def list_incidents(
    _: AdminClaims,
    diagnostics: DiagnosticsDep,
    state: Annotated[str, Query(pattern="^(open|all)$")] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> IncidentList:
    """The newest incidents first; ``state=all`` includes resolved ones."""
    return IncidentList(incidents=diagnostics.incidents(open_only=state == "open", limit=limit))


@router.get("/incidents/{incident_id}", response_model=Incident)
async def get_incident(
    _: AdminClaims,
    diagnostics: DiagnosticsDep,
    incident_id: IncidentId,
) -> Incident:
    return diagnostics.incident(incident_id)


@router.post("/incidents/{incident_id}/remediations", response_model=Remediation)
async def remediate(
    claims: AdminClaims, remediations: RemediationsDep, incident_id: IncidentId, request: RemediationRequest
) -> Remediation:
    """Dry-run, request (risky actions then wait for another admin's approval) or start a remediation."""
    return await remediations.request(claims.user_id, incident_id, request)


@router.post("/remediations/{remediation_id}/approve", response_model=Remediation)
async def approve(
    claims: AdminClaims,
    remediations: RemediationsDep,
    remediation_id: Annotated[str, Path(pattern="^rem-[0-9a-f]{12}$")],
) -> Remediation:
    return await remediations.approve(claims.user_id, remediation_id)


@router.get("/remediations/{remediation_id}", response_model=Remediation)
async def get_remediation(
    _: AdminClaims,
    remediations: RemediationsDep,
    remediation_id: Annotated[str, Path(pattern="^rem-[0-9a-f]{12}$")],
) -> Remediation:
    return remediations.get(remediation_id)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def prometheus_metrics(_: AdminClaims) -> Response:
    """This server's metrics in Prometheus' text format (with ``SHADOWDESK_OTEL_PROMETHEUS=true``): the
    service's own and every session's latest metrics and open incidents, by pseudonym."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/audit", response_model=AuditPage)
async def audit(
    _: AdminClaims,
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
