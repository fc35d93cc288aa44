"""``GET /health/stream``: how far behind the committed stream each consumer is (no token: counts only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import services
from cloud_infer.stream.fanout import Fanout
from cloud_infer.stream.protocol import StreamHealth

router = APIRouter(tags=["health"])


def _stream(connection: HTTPConnection) -> Fanout | None:
    return services(connection).stream


StreamDep = Annotated[Fanout | None, Depends(_stream)]


@router.get("/health/stream", response_model=StreamHealth)
async def stream_health(stream: StreamDep) -> StreamHealth:
    """Lag of every consumer of the committed stream, summed over sessions; empty when none runs."""
    if stream is None:
        return StreamHealth(consumers=[], last_sweep_s=None)
    return stream.health()
