"""HTTP routes of recording and macros: ``/v1/workflows/recordings``, ``/macros``, ``/schema``.

Everything is the caller's own: recordings and macros are looked up in the token's user's space,
never by a parameter naming another user. Reading needs the ``read`` scope; recording, saving and
deleting need ``manage`` (they act on the desktop or change what a run will do).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection

from cloud_infer.api_deps import ManageClaims, ReadClaims, services
from cloud_infer.api_errors import error_responses
from cloud_infer.commands.policy import issuer_for
from cloud_infer.errors import ErrorCode, InvalidMessageError
from cloud_infer.workflows.errors import ProgramInvalidError
from cloud_infer.workflows.macros import MAX_DOCUMENT_BYTES
from cloud_infer.workflows.program import program_schema
from cloud_infer.workflows.protocol import (
    ID_PATTERN,
    MacroInvalidResponse,
    MacroListItem,
    MacroView,
    RecordingView,
    StartRecordingRequest,
    StoppedView,
    StopRecordingRequest,
    list_item,
    macro_view,
    recording_view,
)
from cloud_infer.workflows.service import WorkflowService

router = APIRouter(prefix="/v1/workflows", tags=["workflows"], responses=error_responses(403, 404))


def _workflows(connection: HTTPConnection) -> WorkflowService:
    found = services(connection).workflows
    if found is None:
        raise InvalidMessageError("workflows are not enabled on this server")
    return found


WorkflowsDep = Annotated[WorkflowService, Depends(_workflows)]
RecordingId = Annotated[str, Path(pattern=ID_PATTERN)]
MacroId = Annotated[str, Path(pattern=ID_PATTERN)]
_INVALID: dict[int | str, dict[str, Any]] = {
    400: {"model": MacroInvalidResponse, "description": "Not a valid program: every problem found."}
}


@router.post("/recordings", response_model=RecordingView)
async def start_recording(
    claims: ManageClaims, workflows: WorkflowsDep, body: StartRecordingRequest
) -> RecordingView:
    """Start recording a demonstration on one of your sessions; its agent records until stopped."""
    issuer = issuer_for(claims, issuing=True)
    return recording_view(await workflows.start_recording(issuer, claims.user_id, body.session_id))


@router.get("/recordings/{recording_id}", response_model=RecordingView)
async def get_recording(
    claims: ReadClaims, workflows: WorkflowsDep, recording_id: RecordingId
) -> RecordingView:
    """The recording's status (recording, stopping, compiled, failed) and how much it holds."""
    issuer = issuer_for(claims, issuing=False)
    return recording_view(await workflows.get_recording(issuer, claims.user_id, recording_id))


@router.post("/recordings/{recording_id}/stop", response_model=StoppedView)
async def stop_recording(
    claims: ManageClaims,
    workflows: WorkflowsDep,
    recording_id: RecordingId,
    body: StopRecordingRequest | None = None,
) -> StoppedView:
    """Stop, compile the recording into a macro and save it; again: the macro already made."""
    issuer = issuer_for(claims, issuing=True)
    stopped = await workflows.stop_recording(issuer, claims.user_id, recording_id, body.name if body else "")
    return StoppedView(**macro_view(stopped.macro).model_dump(), recording_id=recording_id)


@router.get("/macros", response_model=list[MacroListItem])
async def list_macros(claims: ReadClaims, workflows: WorkflowsDep) -> list[MacroListItem]:
    """Your macros, most recently changed first."""
    return [list_item(m) for m in await workflows.macros.list_macros(claims.user_id)]


@router.get("/macros/{macro_id}", response_model=MacroView)
async def get_macro(
    claims: ReadClaims,
    workflows: WorkflowsDep,
    macro_id: MacroId,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> MacroView:
    """The macro's latest version (or ``version``): its YAML document and the program it describes."""
    return macro_view(await workflows.macros.get(claims.user_id, macro_id, version))


_YAML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"The YAML document (UTF-8, at most {MAX_DOCUMENT_BYTES} bytes).",
        "content": {"application/yaml": {"schema": {"type": "string"}}},
    }
}


@router.put("/macros/{macro_id}", response_model=MacroView, responses=_INVALID, openapi_extra=_YAML_BODY)
async def put_macro(
    claims: ManageClaims, workflows: WorkflowsDep, macro_id: MacroId, request: Request
) -> Any:
    """Save the YAML document (the request body) as the macro's next version (its first, for a new id)."""
    try:
        document = (await request.body()).decode()
    except UnicodeDecodeError:
        raise InvalidMessageError("the document is not UTF-8") from None
    try:
        macro = await workflows.macros.save(claims.user_id, macro_id, document)
    except ProgramInvalidError as exc:
        body = MacroInvalidResponse(code=ErrorCode.INVALID_ARGUMENT, message=str(exc), errors=exc.problems)
        return JSONResponse(body.model_dump(mode="json"), status_code=400)
    return macro_view(macro)


@router.delete("/macros/{macro_id}", status_code=204, response_class=Response)
async def delete_macro(claims: ManageClaims, workflows: WorkflowsDep, macro_id: MacroId) -> Response:
    """Delete the macro and every version of it."""
    await workflows.macros.delete(claims.user_id, macro_id)
    return Response(status_code=204)


@router.get("/schema")
async def schema(claims: ReadClaims) -> dict[str, Any]:
    """The JSON Schema of a macro document."""
    return program_schema()
