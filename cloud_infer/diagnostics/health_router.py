"""``/v1/me/health``: a user's own desktops' open incidents, and the fixes they may apply themselves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import ManageClaims, ReadClaims, services
from cloud_infer.api_errors import error_responses
from cloud_infer.diagnostics.self_service import HealthNotice, SelfFixResult, SelfService
from cloud_infer.errors import BackendUnavailableError

router = APIRouter(prefix="/v1/me/health", tags=["ops diagnostics"], responses=error_responses(403, 404, 503))


def _self_service(connection: HTTPConnection) -> SelfService:
    found = services(connection)
    if found.diagnostics is None or found.remediations is None:
        raise BackendUnavailableError("ops diagnostics is not running on this server")
    return SelfService(
        found.diagnostics,
        found.commands,
        found.remediations.audit,
        deadline_s=found.diagnostics.settings.remediation_deadline_s,
    )


SelfServiceDep = Annotated[SelfService, Depends(_self_service)]


class HealthNotices(BaseModel):
    notices: list[HealthNotice]


@router.get("", response_model=HealthNotices)
async def health(claims: ReadClaims, self_service: SelfServiceDep) -> HealthNotices:
    """What is wrong with the caller's desktops now, newest first, with the fixes on offer."""
    return HealthNotices(notices=self_service.notices(claims.user_id))


@router.post("/{incident_id}/fixes/{fix_id}", response_model=SelfFixResult)
async def apply_fix(
    claims: ManageClaims,
    self_service: SelfServiceDep,
    incident_id: Annotated[str, Path(pattern="^inc-[0-9a-f]{12}$")],
    fix_id: Annotated[str, Path(pattern="^f[0-9]{1,2}$")],
) -> SelfFixResult:
    """Apply an offered fix to the caller's own desktop; answers once the desktop reported the result."""
    return await self_service.fix(claims.user_id, incident_id, fix_id)
