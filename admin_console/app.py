"""The console's web app: sign-in, the pages, a thin proxy to the cloud's ``/v1/ops`` and the live websocket.

Every call to the cloud goes with the signed-in user's own short-lived token (``cloud.CloudClient``),
so the cloud decides what each role may read and do; the pages only hide what a role may not do.
Requests that change anything must be JSON from this origin: with the SameSite=Strict cookie that is
what keeps another site from acting as a signed-in user (a form cannot send JSON, and the browser
does not attach the cookie to another site's requests).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect

from admin_console.cloud import CloudClient
from admin_console.config import ConsoleSettings
from admin_console.errors import ConsoleError, ForbiddenRequestError, NotSignedInError, SignInError
from admin_console.identity import ConsoleUser, IdentityProvider, LocalUsers
from admin_console.live import LiveFeed
from admin_console.sessions import COOKIE, ConsoleSession, Sessions

# What the browser may read and do through the console: the cloud's ops routes, nothing else.
_READS = re.compile(
    r"^(sessions|sessions/s-[0-9a-f]{16}/series|audit|incidents"
    r"|incidents/inc-[0-9a-f]{12}(/similar|/remediations|/analysis)?|remediations/rem-[0-9a-f]{12})$"
)
_WRITES = re.compile(
    r"^(incidents/inc-[0-9a-f]{12}/(remediations|analysis)|remediations/rem-[0-9a-f]{12}/approve"
    r"|sessions/s-[0-9a-f]{16}/reveal)$"
)
_QUERY = frozenset({"seconds", "q", "state", "limit", "after_seq"})
_PAGES = ("/", "/sessions/{subject}", "/incidents/{incident_id}", "/audit", "/search")
_SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class SignIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class Me(BaseModel):
    username: str
    role: str
    may_operate: bool
    is_admin: bool


def _session(connection: HTTPConnection) -> ConsoleSession:
    sessions: Sessions = connection.app.state.sessions
    found = sessions.find(connection.cookies.get(COOKIE))
    if found is None:
        raise NotSignedInError("sign in first")
    return found


def _cloud(connection: HTTPConnection) -> CloudClient:
    cloud: CloudClient = connection.app.state.cloud
    return cloud


SessionDep = Annotated[ConsoleSession, Depends(_session)]
CloudDep = Annotated[CloudClient, Depends(_cloud)]


def _same_origin(connection: HTTPConnection) -> bool:
    origin = connection.headers.get("origin")
    scheme = "https" if connection.url.scheme in ("https", "wss") else "http"
    return origin is None or origin == f"{scheme}://{connection.headers.get('host', '')}"


def _json_from_here(request: Request) -> None:
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise ForbiddenRequestError("send JSON")
    if not _same_origin(request):
        raise ForbiddenRequestError("not from this origin")


def _reply(status: int, body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def build_app(settings: ConsoleSettings, identity: IdentityProvider | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.cloud = CloudClient(
            settings.cloud_url,
            settings.service_token_file,
            settings.http_timeout_s,
            settings.action_timeout_s,
        )
        try:
            yield
        finally:
            await app.state.cloud.close()

    app = FastAPI(title="Shadowdesk admin console", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.sessions = Sessions(settings.session_secret.get_secret_value(), settings.session_ttl_s)
    users = identity or LocalUsers(settings.users_file)
    static = settings.web_dir / "static"
    charts = settings.web_dir / "node_modules/uplot/dist"
    if not charts.is_dir():
        raise FileNotFoundError(f"{charts} is missing: install it with npm ci --prefix {settings.web_dir}")

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(ConsoleError)
    async def console_error(request: Request, exc: ConsoleError) -> Response:
        if isinstance(exc, NotSignedInError) and not request.url.path.startswith("/api/"):
            return RedirectResponse("/login", status_code=303)
        return _reply(exc.status, {"detail": str(exc)})

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", include_in_schema=False)
    async def login_page() -> FileResponse:
        return FileResponse(static / "login.html")

    async def page(_: SessionDep) -> FileResponse:
        return FileResponse(static / "console.html")

    for path in _PAGES:
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)

    @app.post("/api/login", response_model=Me)
    async def login(request: Request, body: SignIn) -> JSONResponse:
        _json_from_here(request)
        user = users.authenticate(body.username, body.password)
        if user is None:
            raise SignInError("unknown user or wrong password")
        sessions: Sessions = app.state.sessions
        _, cookie = sessions.start(user)
        response = _reply(200, _me(user).model_dump())
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=sessions.ttl_s,
            httponly=True,
            samesite="strict",
            secure=settings.secure_cookie,
            path="/",
        )
        return response

    @app.post("/api/logout", status_code=204)
    async def logout(request: Request) -> Response:
        _json_from_here(request)
        sessions: Sessions = app.state.sessions
        sessions.end(request.cookies.get(COOKIE))
        response = Response(status_code=204)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.get("/api/me", response_model=Me)
    async def me(session: SessionDep) -> Me:
        return _me(session.user)

    @app.get("/api/ops/{path:path}")
    async def read(path: str, request: Request, session: SessionDep, cloud: CloudDep) -> JSONResponse:
        if not _READS.fullmatch(path):
            return _reply(404, {"detail": "not an ops route of the console"})
        params = {k: v for k, v in request.query_params.items() if k in _QUERY}
        reply = await cloud.get(session.user, path, params)
        return _reply(reply.status, reply.body)

    @app.post("/api/ops/{path:path}")
    async def write(path: str, request: Request, session: SessionDep, cloud: CloudDep) -> JSONResponse:
        _json_from_here(request)
        if not _WRITES.fullmatch(path):
            return _reply(404, {"detail": "not an ops action of the console"})
        reply = await cloud.post(session.user, path, await request.json())
        return _reply(reply.status, reply.body)

    @app.websocket("/ws/live")
    async def live(socket: WebSocket) -> None:
        # The session cookie authenticates it (never a token in the URL); another site's page may not.
        found = app.state.sessions.find(socket.cookies.get(COOKIE))
        if found is None or not _same_origin(socket):
            await socket.close(code=4401)
            return
        await socket.accept()
        try:
            await LiveFeed(socket, app.state.cloud, found.user, settings.poll_interval_s).run()
        except WebSocketDisconnect:
            return

    app.mount("/static", StaticFiles(directory=static), name="static")
    app.mount("/vendor/uplot", StaticFiles(directory=charts), name="uplot")
    return app


def _me(user: ConsoleUser) -> Me:
    return Me(username=user.username, role=user.role, may_operate=user.may_operate, is_admin=user.is_admin)
