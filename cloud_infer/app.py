"""The HTTP API: ``build_app`` serves a ``Services`` behind the guard (``cloud_infer.http_guard``)."""

from __future__ import annotations

from fastapi import FastAPI

from cloud_infer.api_errors import ErrorResponse, install_error_handlers
from cloud_infer.assist.api_router import router as assist_router
from cloud_infer.auth_api import router as auth_router
from cloud_infer.commands.api_router import router as commands_router
from cloud_infer.config import ServerSettings
from cloud_infer.desktop.api_router import router as desktop_router
from cloud_infer.desktop.page_router import router as desk_page_router
from cloud_infer.diagnostics.api_router import router as diagnostics_router
from cloud_infer.diagnostics.experience_router import router as experience_router
from cloud_infer.diagnostics.health_router import router as health_router
from cloud_infer.http_guard import HttpGuard
from cloud_infer.llm.api_router import router as llm_router
from cloud_infer.privacy.api_router import router as privacy_router
from cloud_infer.recall.api_router import router as recall_router
from cloud_infer.services import Services
from cloud_infer.sidebar.api_router import router as sidebar_router
from cloud_infer.stream.api_router import router as stream_router
from cloud_infer.timeline.api_router import router as timeline_router
from cloud_infer.workflows.api_router import router as workflows_router
from cloud_infer.workflows.runner_api import router as workflow_runs_router


def build_app(settings: ServerSettings, services: Services) -> FastAPI:
    """The API over ``services``; the caller owns them (store, gateway, Recall) and closes them after.

    Both go on ``app.state``, where ``cloud_infer.api_deps`` finds them. The interactive docs and the
    OpenAPI schema are served in local mode only.
    """
    local = settings.environment == "local"
    app = FastAPI(
        title="Shadowdesk",
        version="1",
        docs_url="/docs" if local else None,
        redoc_url=None,
        openapi_url="/openapi.json" if local else None,
        # Request spans and metrics, yes; but FastAPI's own log records carry validation messages
        # (which quote the input: a user's text) past our logging filter, and operation spans add
        # nothing the request span and ours lack.
        telemetry={"logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.services = services
    install_error_handlers(app)
    for router in (
        auth_router,
        timeline_router,
        privacy_router,
        recall_router,
        assist_router,
        llm_router,
        sidebar_router,
        desktop_router,
        desk_page_router,
        commands_router,
        stream_router,
        workflows_router,
        workflow_runs_router,
        diagnostics_router,
        experience_router,
        health_router,
    ):
        app.include_router(router)

    @app.get("/health", responses={503: {"model": ErrorResponse}})
    async def health() -> dict[str, str]:
        """Ready when the recall store answers; a StoreUnavailableError becomes 503."""
        await services.store.check()
        return {"status": "ok"}

    app.add_middleware(HttpGuard, settings=settings, services=services)
    return app
