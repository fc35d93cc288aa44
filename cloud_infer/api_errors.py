"""The one JSON error shape of the HTTP API and the websockets' error messages, from one table.

``public_error`` gives an exception's ``ErrorCode`` (``cloud_infer.errors.ERRORS``) and the message a client
may see; an HTTP answer takes its status from the code's row, a websocket ``error`` message carries the
code and message as they are (``cloud_infer.live_socket.error_fields``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from cloud_infer.errors import ERRORS, CloudInferError, ErrorCode, error_code
from cloud_infer.llm.errors import LLMError
from recall_store.errors import ObjectNotFoundError, StoreError

logger = logging.getLogger(__name__)

_MAX_UPSTREAM_MESSAGE = 300  # a backend's message may quote the prompt back


class ErrorResponse(BaseModel):
    """Body of every error answer: a stable machine-readable ``code`` and a human ``message``."""

    code: ErrorCode
    message: str


# What cloud_infer.http_guard may answer on any /v1 route before the route runs: a malformed request
# (400), a missing, invalid or revoked token (401), a body too slow (408) or over the route's limit
# (413), the caller's limits (429), revocations that cannot be read (503), the route's deadline (504).
GUARD_STATUSES = (400, 401, 408, 413, 429, 503, 504)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses`` of a /v1 router: the guard's statuses and the router's own, each an ErrorResponse."""
    return {status: {"model": ErrorResponse} for status in sorted({*GUARD_STATUSES, *statuses})}


def public_error(exc: BaseException) -> tuple[ErrorCode, str]:
    """The code of ``exc`` and the message a client may see; an unexpected error is logged, not shown."""
    code = error_code(exc)
    if code is ErrorCode.INTERNAL:
        logger.error("unexpected error in the API", exc_info=exc)
        return code, "internal error"
    if isinstance(exc, ObjectNotFoundError):
        return code, "no such frame"  # not the store's message, which names the bucket
    if code is ErrorCode.LLM_FAILED:
        return code, str(exc)[:_MAX_UPSTREAM_MESSAGE]
    return code, str(exc)


def error_response(
    code: ErrorCode, message: str, retry_after_s: float | None = None, status: int | None = None
) -> JSONResponse:
    """The answer for ``code``, with its status from ``ERRORS`` unless ``status`` says otherwise."""
    status = status or ERRORS[code].http
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(retry_after_s)))
    body = ErrorResponse(code=code, message=message).model_dump(mode="json")
    return JSONResponse(body, status_code=status, headers=headers)


def exception_response(exc: BaseException) -> JSONResponse:
    """The answer for a domain, store or LLM error (500 for anything unexpected)."""
    code, message = public_error(exc)
    return error_response(code, message, retry_after_s=getattr(exc, "retry_after_s", None))


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    return exception_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
    return error_response(ErrorCode.INVALID_ARGUMENT, problems)


_BY_STATUS = {edges.http: code for code, edges in ERRORS.items()}


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    """Starlette's own answers (no such route, method not allowed) under the nearest code."""
    assert isinstance(exc, HTTPException)
    fallback = ErrorCode.INVALID_ARGUMENT if exc.status_code < 500 else ErrorCode.INTERNAL
    code = _BY_STATUS.get(exc.status_code, fallback)
    return error_response(code, str(exc.detail), status=exc.status_code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CloudInferError, _domain_error)
    app.add_exception_handler(StoreError, _domain_error)
    app.add_exception_handler(LLMError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
