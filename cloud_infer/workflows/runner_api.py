"""HTTP and websocket routes of macro runs: ``/v1/workflows/runs`` and ``/v1/workflows/live``.

A run is the caller's own: it is started on one of their sessions and looked up in their space only
(another user's run id is 404). Starting, answering and cancelling act on the desktop and need the
``manage`` scope; reading and following need ``read``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, WebSocket
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import ManageClaims, ReadClaims, services
from cloud_infer.api_errors import error_responses
from cloud_infer.errors import InvalidMessageError
from cloud_infer.live_socket import open_live
from cloud_infer.workflows.runner_live import push_run_updates
from cloud_infer.workflows.runner_protocol import (
    RUN_ID_PATTERN,
    AnswerRequest,
    RunList,
    RunSummary,
    RunView,
    StartRunRequest,
)
from cloud_infer.workflows.runner_service import WorkflowRunService, program_from_document, summary_of

router = APIRouter(prefix="/v1/workflows", tags=["workflow runs"], responses=error_responses(403, 404))


def _runs(connection: HTTPConnection) -> WorkflowRunService:
    found = services(connection).workflow_runs
    if found is None:
        raise InvalidMessageError("macro runs are not enabled on this server")
    return found


RunsDep = Annotated[WorkflowRunService, Depends(_runs)]
RunId = Annotated[str, Path(pattern=RUN_ID_PATTERN, description="The run's id (32 hex digits).")]


@router.post("/runs", response_model=RunSummary)
async def start_run(claims: ManageClaims, runs: RunsDep, body: StartRunRequest) -> RunSummary:
    """Run a stored macro (``macro_id``) or a program document on one of your sessions."""
    program = program_from_document(body.program) if body.program is not None else None
    state = await runs.start_run(
        claims.user_id,
        body.session_id,
        program=program,
        macro_id=body.macro_id,
        parameters=body.parameters,
        secrets={name: value.get_secret_value() for name, value in body.secrets.items()},
    )
    return summary_of(state)


@router.get("/runs", response_model=RunList)
async def list_runs(
    claims: ReadClaims,
    runs: RunsDep,
    macro_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RunList:
    """Your runs, newest first (of one macro with ``macro_id``)."""
    return RunList(runs=await runs.list_runs(claims.user_id, macro_id, limit))


@router.get("/runs/{run_id}", response_model=RunView)
async def get_run(claims: ReadClaims, runs: RunsDep, run_id: RunId) -> RunView:
    """The run with its trace: every try of every step, how its target was found, frames, checks."""
    return await runs.get(claims.user_id, run_id)


@router.post("/runs/{run_id}/answer", response_model=RunSummary)
async def answer_run(claims: ManageClaims, runs: RunsDep, run_id: RunId, body: AnswerRequest) -> RunSummary:
    """Answer what the run asks: confirm/reject a sensitive step, or retry/skip/take_over/abort a halt."""
    return summary_of(await runs.answer(claims.user_id, run_id, body.decision, body.question_id))


@router.post("/runs/{run_id}/cancel", response_model=RunSummary)
async def cancel_run(claims: ManageClaims, runs: RunsDep, run_id: RunId) -> RunSummary:
    """Stop the run now; a finished run is returned as it is."""
    return summary_of(await runs.cancel(claims.user_id, run_id))


@router.websocket("/live")
async def live(websocket: WebSocket, runs: RunsDep) -> None:
    """Every change of the caller's runs (subprotocol auth, like the other sockets)."""
    async with open_live(websocket) as claims:
        await push_run_updates(websocket, runs, claims.user_id)
