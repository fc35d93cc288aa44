"""FastAPI dependencies shared by the routers, as ``Annotated`` aliases: one per service, and the caller.

The caller's claims were verified by ``cloud_infer.http_guard`` before the request body was read; these
dependencies only take them from the connection and check the scope a route needs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from cloud_infer.assist.service import AssistService
from cloud_infer.auth import TokenClaims
from cloud_infer.config import ServerSettings
from cloud_infer.errors import BackendUnavailableError, TokenInvalidError
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.runtime import RecallRuntime
from cloud_infer.services import Services
from cloud_infer.timeline.service import TimelineService


def services(connection: HTTPConnection) -> Services:
    found = connection.app.state.services
    assert isinstance(found, Services)
    return found


def _settings(connection: HTTPConnection) -> ServerSettings:
    return services(connection).settings


def _timeline(connection: HTTPConnection) -> TimelineService:
    return services(connection).timeline


def _privacy(connection: HTTPConnection) -> PrivacyService:
    return services(connection).privacy


def _llm(connection: HTTPConnection) -> LLMGateway:
    return services(connection).llm


def _assist(connection: HTTPConnection) -> AssistService:
    return services(connection).assist


def _recall(connection: HTTPConnection) -> RecallRuntime:
    recall = services(connection).recall
    if recall is None:
        raise BackendUnavailableError("recall is disabled on this server")
    return recall


def caller(connection: HTTPConnection) -> TokenClaims:
    """The claims http_guard verified for this connection."""
    claims = connection.scope.get("state", {}).get("claims")
    if not isinstance(claims, TokenClaims):
        raise TokenInvalidError("missing authorization: Bearer <token>")
    return claims


def _read_claims(connection: HTTPConnection) -> TokenClaims:
    return caller(connection).require("read")


def _manage_claims(connection: HTTPConnection) -> TokenClaims:
    return caller(connection).require("manage")


ServicesDep = Annotated[Services, Depends(services)]
SettingsDep = Annotated[ServerSettings, Depends(_settings)]
TimelineDep = Annotated[TimelineService, Depends(_timeline)]
PrivacyDep = Annotated[PrivacyService, Depends(_privacy)]
LLMDep = Annotated[LLMGateway, Depends(_llm)]
AssistDep = Annotated[AssistService, Depends(_assist)]
RecallDep = Annotated[RecallRuntime, Depends(_recall)]
# The caller's identity: every read is scoped to the token's subject, never to a parameter.
ReadClaims = Annotated[TokenClaims, Depends(_read_claims)]
# Destructive and privacy-reducing changes need the stronger scope.
ManageClaims = Annotated[TokenClaims, Depends(_manage_claims)]
