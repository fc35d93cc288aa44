"""FastAPI dependencies shared by the routers, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header
from starlette.requests import HTTPConnection

from cloud_infer.auth import TokenClaims, bearer_token, verify_token
from cloud_infer.config import ServerSettings
from cloud_infer.timeline.service import TimelineService


def _settings(request: HTTPConnection) -> ServerSettings:
    settings = request.app.state.settings
    assert isinstance(settings, ServerSettings)
    return settings


def _timeline(request: HTTPConnection) -> TimelineService:
    service = request.app.state.timeline
    assert isinstance(service, TimelineService)
    return service


SettingsDep = Annotated[ServerSettings, Depends(_settings)]
TimelineDep = Annotated[TimelineService, Depends(_timeline)]


def _read_claims(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> TokenClaims:
    return verify_token(settings.token_secret.get_secret_value(), bearer_token(authorization), "read")


# The caller's identity: every read is scoped to the token's subject, never to a parameter.
ReadClaims = Annotated[TokenClaims, Depends(_read_claims)]
