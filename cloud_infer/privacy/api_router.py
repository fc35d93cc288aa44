"""HTTP routes of the caller's own privacy settings: ``GET`` and ``PUT /v1/privacy``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from cloud_infer.api_deps import ReadClaims
from cloud_infer.api_errors import ErrorResponse
from cloud_infer.privacy.protocol import PrivacySettings
from cloud_infer.privacy.service import PrivacyService


def _privacy(request: Request) -> PrivacyService:
    service = request.app.state.privacy
    assert isinstance(service, PrivacyService)
    return service


PrivacyDep = Annotated[PrivacyService, Depends(_privacy)]

router = APIRouter(
    prefix="/v1",
    tags=["privacy"],
    responses={status: {"model": ErrorResponse} for status in (400, 401, 503)},
)


@router.get("/privacy", response_model=PrivacySettings)
async def get_privacy(claims: ReadClaims, privacy: PrivacyDep) -> PrivacySettings:
    """The caller's settings (the defaults until first set)."""
    return await privacy.get(claims.user_id)


@router.put("/privacy", response_model=PrivacySettings)
async def put_privacy(claims: ReadClaims, privacy: PrivacyDep, settings: PrivacySettings) -> PrivacySettings:
    """Replace the caller's settings; the next batch ingested for the caller follows them."""
    await privacy.put(claims.user_id, settings)
    return settings
