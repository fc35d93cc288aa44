"""The HTTP read API: ``build_app`` wires services onto ``app.state`` in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cloud_infer.api_errors import ErrorResponse, install_error_handlers
from cloud_infer.assist.api_router import router as assist_router
from cloud_infer.assist.service import AssistService
from cloud_infer.config import ServerSettings
from cloud_infer.llm.api_router import router as llm_router
from cloud_infer.llm.config import LLMSettings
from cloud_infer.llm.gateway import LLMGateway
from cloud_infer.privacy.api_router import router as privacy_router
from cloud_infer.privacy.service import PrivacyService
from cloud_infer.recall.api_router import router as recall_router
from cloud_infer.recall.runtime import RecallRuntime
from cloud_infer.sidebar.api_router import router as sidebar_router
from cloud_infer.timeline.api_router import router as timeline_router
from cloud_infer.timeline.service import TimelineService
from recall_store.event_log import EventLog
from recall_store.store import ObjectStore


def build_app(
    settings: ServerSettings,
    store: ObjectStore,
    privacy: PrivacyService | None = None,
    recall: RecallRuntime | None = None,
    llm: LLMGateway | None = None,
) -> FastAPI:
    """The API over ``store``; the caller owns the store and the gateway and closes them after the app stops.

    Pass the ``privacy`` service ingest uses, so both share its cache; by default the app has its own.
    Without ``llm`` the features that need a model answer 503.
    """
    gateway = llm or LLMGateway(LLMSettings(backend="none"), None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.timeline = TimelineService(EventLog(store))
        app.state.privacy = privacy or PrivacyService(store)
        app.state.recall = recall  # None: recall is disabled and its routes answer 503
        app.state.llm = gateway
        app.state.assist = AssistService(recall.service if recall else None, gateway)
        yield

    app = FastAPI(title="Shadowdesk", version="1", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(timeline_router)
    app.include_router(privacy_router)
    app.include_router(recall_router)
    app.include_router(assist_router)
    app.include_router(llm_router)
    app.include_router(sidebar_router)

    @app.get("/health", responses={503: {"model": ErrorResponse}})
    async def health() -> dict[str, str]:
        """Ready when the recall store answers; a StoreUnavailableError becomes 503."""
        await store.check()
        return {"status": "ok"}

    return app
