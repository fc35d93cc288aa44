"""HTTP routes of the caller's own privacy settings: ``GET`` and ``PUT /v1/privacy``.

A change that gives up privacy or destroys data (``privacy_reductions``) needs the manage scope; one
that only captures less (pause, a new exclusion) needs just read, so a person can always stop capture.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import ReadClaims, services
from cloud_infer.api_errors import error_responses
from cloud_infer.errors import PermissionDeniedError
from cloud_infer.privacy.protocol import PrivacySettings, privacy_reductions
from cloud_infer.privacy.service import PrivacyService

router = APIRouter(
    prefix="/v1",
    tags=["privacy"],
    responses=error_responses(403),
)


def _privacy(connection: HTTPConnection) -> PrivacyService:
    return services(connection).privacy


PrivacyDep = Annotated[PrivacyService, Depends(_privacy)]


@router.get("/privacy", response_model=PrivacySettings)
async def get_privacy(claims: ReadClaims, privacy: PrivacyDep) -> PrivacySettings:
    """The caller's settings (the defaults until first set)."""
    return await privacy.get(claims.user_id)


@router.put("/privacy", response_model=PrivacySettings)
async def put_privacy(claims: ReadClaims, privacy: PrivacyDep, settings: PrivacySettings) -> PrivacySettings:
    """Replace the caller's settings; the next batch ingested for the caller follows them."""
    reductions = privacy_reductions(await privacy.get(claims.user_id), settings)
    if reductions and "manage" not in claims.scopes:
        raise PermissionDeniedError(f"a token with the manage scope is needed to {', '.join(reductions)}")
    await privacy.put(claims.user_id, settings)
    return settings
