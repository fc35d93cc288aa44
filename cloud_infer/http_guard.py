"""The HTTP API's front door: one ASGI layer that every request and websocket passes first.

In this order, before a route runs or a body byte is read:

1. the route's policy (``policy_for``): its resource, body limit and deadline; ``/health``, the sidebar's
   files and the login redemption need no token;
2. the bearer token (read scope, not revoked) — websockets carry it in ``Sec-WebSocket-Protocol`` as
   ``bearer.<token>`` beside ``shadowdesk.v1``, because a browser cannot set headers on one, and no
   token may ride in a URL; a websocket from a foreign ``Origin`` is refused;
3. the user's limits for the resource (``cloud_infer.tenancy.requests``): 429 with ``Retry-After``;
4. the body: refused with 413 past the route's limit (declared or streamed), 408 when it arrives
   slower than ``http_body_timeout_s``; then the route runs under its deadline (504).

It also sets the headers every answer needs unless a route set its own (``nosniff``, no referrer,
``Cache-Control: no-store``, so a frame erased on the server does not live on in a browser cache), and
writes the access log: method, path, status and time, never the query string (a search query is the
user's private text) and never a header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud_infer.api_errors import error_response, exception_response
from cloud_infer.auth import TokenClaims, bearer_token
from cloud_infer.config import ServerSettings
from cloud_infer.errors import (
    ERRORS,
    CloudInferError,
    ErrorCode,
    InvalidMessageError,
    MessageTooLargeError,
    TokenInvalidError,
    error_code,
)
from cloud_infer.services import Services
from cloud_infer.tenancy.requests import Resource

logger = logging.getLogger(__name__)

SUBPROTOCOL = "shadowdesk.v1"
_BEARER_PROTOCOL = "bearer."
KIB = 1024
_DEFAULT_BODY = 64 * KIB
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


@dataclass(frozen=True, slots=True)
class Policy:
    resource: Resource | None  # None: public, no token
    body_limit: int = _DEFAULT_BODY
    long: bool = False  # an export: EXPORT_TIMEOUT_S instead of HTTP_REQUEST_TIMEOUT_S


_PUBLIC = Policy(None, 0)


def policy_for(method: str, path: str) -> Policy:
    """What a request to ``path`` needs and may cost."""
    if not path.startswith("/v1/"):
        return _PUBLIC  # health, the sidebar's files, the docs in local mode, and 404s
    if path == "/v1/auth/session":
        return Policy("login", 8 * KIB)  # the ticket in the body is the credential
    if path == "/v1/recall/search":
        return Policy("search")
    if path == "/v1/recall/export":
        return Policy("export", long=True)
    if path == "/v1/recall/erase" or (method == "DELETE" and path.startswith("/v1/recall/moments/")):
        return Policy("erase", 4 * KIB)
    if path == "/v1/timeline":
        return Policy("timeline")
    if path.startswith("/v1/frames/"):
        return Policy("frames", 0)
    if path == "/v1/llm/embeddings":
        return Policy("embeddings", 2048 * KIB)
    if method == "POST" and path.startswith("/v1/workflows/runs"):
        # Starting a run (a program document of up to 256 KiB as YAML, more as JSON) issues commands;
        # so do answering and cancelling one.
        return Policy("commands", 512 * KIB if path == "/v1/workflows/runs" else 4 * KIB)
    if path.startswith("/v1/workflows/recordings"):
        # Starting and stopping recordings issues commands (a stop waits for the agent and compiles).
        return Policy("commands" if method == "POST" else "api", 4 * KIB)
    if method == "PUT" and path.startswith("/v1/workflows/macros/"):
        return Policy("api", 256 * KIB)  # a macro's YAML document (macros.MAX_DOCUMENT_BYTES)
    if method == "POST" and path.startswith("/v1/desktop/") and path.endswith("/experience"):
        return Policy("experience", 2 * KIB)  # a thin client's report: a few numbers
    if method == "POST" and path.startswith("/v1/sessions/"):
        # Issuing (an action of at most 16 KiB in protobuf, more as JSON) and cancelling commands.
        return Policy("commands", 0 if path.endswith("/cancel") else 32 * KIB)
    return Policy("api")


class HttpGuard:
    def __init__(self, app: ASGIApp, settings: ServerSettings, services: Services) -> None:
        self._app = app
        self._settings = settings
        self._services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self._app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        policy = policy_for(method, path)
        settings = self._settings
        status = 0

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in _SECURITY_HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            headers = Headers(scope=scope)
            key = scope["client"][0] if scope.get("client") else "?"
            if policy.resource is not None and policy.resource != "login":
                claims = await self._authenticate(bearer_token(headers.get("authorization")))
                scope.setdefault("state", {})["claims"] = claims
                key = claims.user_id
            _check_declared_length(headers, policy.body_limit)
            limited = (
                self._services.limits.admit(policy.resource, key)
                if policy.resource is not None
                else contextlib.nullcontext()
            )
            async with limited:
                body = await _read_body(receive, policy.body_limit, settings.http_body_timeout_s)
                deadline = settings.export_timeout_s if policy.long else settings.http_request_timeout_s
                try:
                    async with asyncio.timeout(deadline):
                        await self._app(scope, _replay(body, receive), send_counted)
                except TimeoutError:
                    if not status:
                        await error_response(ErrorCode.TIMEOUT, "the request missed its deadline")(
                            scope, receive, send_counted
                        )
        except CloudInferError as exc:
            if not status:
                await _error(exc)(scope, receive, send_counted)
        finally:
            logger.info("%s %s %d %.1fms", method, path, status, (time.perf_counter() - started) * 1000)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
        tokens = [p.removeprefix(_BEARER_PROTOCOL) for p in offered if p.startswith(_BEARER_PROTOCOL)]
        token = tokens[0] if tokens else ""
        try:
            if not self._origin_allowed(scope, headers):
                raise InvalidMessageError("this origin may not open Shadowdesk websockets")
            if SUBPROTOCOL not in offered or not token:
                raise TokenInvalidError(f"offer the subprotocols {SUBPROTOCOL} and bearer.<token>")
            claims = await self._authenticate(token)
            scope.setdefault("state", {})["claims"] = claims
            async with self._services.limits.admit("websocket", claims.user_id):
                await self._app(scope, receive, send)
        except CloudInferError as exc:
            # Before the handshake: the client sees the upgrade refused (403), nothing more.
            logger.info("websocket %s refused: %s", scope["path"], type(exc).__name__)
            await send({"type": "websocket.close", "code": ERRORS[error_code(exc)].websocket})

    async def _authenticate(self, token: str) -> TokenClaims:
        claims = self._services.tokens.verify(token, "read")
        await self._services.revocations.check(claims)
        return claims

    def _origin_allowed(self, scope: Scope, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is None:
            return True  # not a browser; it still needs a token
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        own = f"{scheme}://{headers.get('host', '')}"
        return origin.rstrip("/") in (own, *self._settings.allowed_origins)


def _check_declared_length(headers: Headers, limit: int) -> None:
    declared = headers.get("content-length")
    if declared is None:
        return
    try:
        length = int(declared)
    except ValueError:
        raise InvalidMessageError("content-length is not a number") from None
    if length > limit:
        raise MessageTooLargeError(f"the body is {length} bytes; this route takes at most {limit}")


async def _read_body(receive: Receive, limit: int, timeout_s: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break  # disconnected: the route sees an empty body and the client is gone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise MessageTooLargeError(f"the body is over this route's limit of {limit} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise _SlowBodyError(f"the body did not arrive within {timeout_s:g} s") from None
    return b"".join(chunks)


class _SlowBodyError(InvalidMessageError):
    """The client sent its body too slowly (408)."""


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the route the body already read, then passes through (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _error(exc: CloudInferError) -> Any:
    if isinstance(exc, _SlowBodyError):
        return error_response(ErrorCode.TIMEOUT, str(exc), status=408)
    return exception_response(exc)
