"""``/v1/ops/incidents``: the fleet's incidents, for tokens with the ``admin`` scope only.

What an incident holds is ops data (rules, metrics, pseudonymous sessions); never a user's screen,
text, titles or who the session belongs to.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import caller, services
from cloud_infer.api_errors import error_responses
from cloud_infer.auth import TokenClaims
from cloud_infer.diagnostics.incidents import Incident
from cloud_infer.diagnostics.service import DiagnosticsService
from cloud_infer.errors import BackendUnavailableError

router = APIRouter(prefix="/v1/ops", tags=["ops diagnostics"], responses=error_responses(403, 404, 503))


def _diagnostics(connection: HTTPConnection) -> DiagnosticsService:
    found = services(connection).diagnostics
    if found is None:
        raise BackendUnavailableError("ops diagnostics is not running on this server")
    return found


def _admin(connection: HTTPConnection) -> TokenClaims:
    return caller(connection).require("admin")


DiagnosticsDep = Annotated[DiagnosticsService, Depends(_diagnostics)]
AdminClaims = Annotated[TokenClaims, Depends(_admin)]


class IncidentList(BaseModel):
    incidents: list[Incident]


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
    incident_id: Annotated[str, Path(pattern="^inc-[0-9a-f]{12}$")],
) -> Incident:
    return diagnostics.incident(incident_id)
