"""The dependencies every router shares, as ``Annotated`` aliases: the server's settings and the caller.

``services`` finds the one typed ``Services`` on ``app.state``; each router declares, beside itself, one
``Annotated`` dependency per service it uses (``TimelineDep`` in ``cloud_infer.timeline.api_router``, ...),
all through it. The caller's claims were verified by ``cloud_infer.http_guard`` before the request body
was read; these dependencies only take them from the connection and check the scope a route needs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from cloud_infer.auth import TokenClaims
from cloud_infer.config import ServerSettings
from cloud_infer.errors import TokenInvalidError
from cloud_infer.services import Services


def services(connection: HTTPConnection) -> Services:
    """The ``Services`` the app was built over (``cloud_infer.app.build_app``)."""
    found = connection.app.state.services
    assert isinstance(found, Services)
    return found


def _settings(connection: HTTPConnection) -> ServerSettings:
    found = connection.app.state.settings
    assert isinstance(found, ServerSettings)
    return found


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


SettingsDep = Annotated[ServerSettings, Depends(_settings)]
# The caller's identity: every read is scoped to the token's subject, never to a parameter.
ReadClaims = Annotated[TokenClaims, Depends(_read_claims)]
# Destructive and privacy-reducing changes need the stronger scope.
ManageClaims = Annotated[TokenClaims, Depends(_manage_claims)]
