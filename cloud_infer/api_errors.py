"""The one JSON error shape of the HTTP API, and the translation of errors into it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from cloud_infer.errors import (
    AuthError,
    BackendUnavailableError,
    CloudInferError,
    InvalidMessageError,
    MessageTooLargeError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitedError,
)
from cloud_infer.llm.errors import LLMError, LLMRateLimitedError, LLMTimeoutError, LLMUnavailableError
from recall_store.errors import InvalidNameError, ObjectNotFoundError, StoreError, StoreUnavailableError

logger = logging.getLogger(__name__)


class ErrorResponse(BaseModel):
    """Body of every error answer: a stable machine-readable ``code`` and a human ``message``."""

    code: str
    message: str


# What cloud_infer.http_guard may answer on any /v1 route before the route runs: a malformed request
# (400), a missing, invalid or revoked token (401), a body too slow (408) or over the route's limit
# (413), the caller's limits (429), revocations that cannot be read (503), the route's deadline (504).
GUARD_STATUSES = (400, 401, 408, 413, 429, 503, 504)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses`` of a /v1 router: the guard's statuses and the router's own, each an ErrorResponse."""
    return {status: {"model": ErrorResponse} for status in sorted({*GUARD_STATUSES, *statuses})}


# Most specific first: PermissionDeniedError is an AuthError.
_STATUS: list[tuple[type[Exception], int, str]] = [
    (PermissionDeniedError, 403, "permission_denied"),
    (AuthError, 401, "unauthenticated"),
    (InvalidMessageError, 400, "invalid_argument"),
    (InvalidNameError, 400, "invalid_argument"),
    (MessageTooLargeError, 413, "too_large"),
    (RateLimitedError, 429, "rate_limited"),
    (QuotaExceededError, 507, "quota_exceeded"),
    (NotFoundError, 404, "not_found"),
    (ObjectNotFoundError, 404, "not_found"),
    (BackendUnavailableError, 503, "unavailable"),
    (StoreUnavailableError, 503, "unavailable"),
]


def error_response(status: int, code: str, message: str, retry_after_s: float | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(retry_after_s)))
    body = ErrorResponse(code=code, message=message).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def status_of(exc: Exception) -> tuple[int, str]:
    """The HTTP status and error code of a domain or store error (500 for anything unexpected)."""
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            return status, code
    return 500, "internal"


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    status, code = status_of(exc)
    if status == 500:
        logger.exception("unexpected error in the HTTP API", exc_info=exc)
        return error_response(500, "internal", "internal error")
    # A missing object is reported as not found, without the bucket name a store message has.
    message = "no such frame" if isinstance(exc, ObjectNotFoundError) else str(exc)
    return error_response(status, code, message, retry_after_s=getattr(exc, "retry_after_s", None))


async def _llm_error(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, LLMRateLimitedError):
        return error_response(429, "rate_limited", str(exc), retry_after_s=exc.retry_after_s)
    if isinstance(exc, LLMTimeoutError):
        return error_response(504, "timeout", str(exc))
    if isinstance(exc, LLMUnavailableError):
        return error_response(503, "unavailable", str(exc))
    return error_response(502, "llm_failed", str(exc)[:300])


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
    return error_response(400, "invalid_argument", problems)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code == 404 else f"http_{exc.status_code}"
    return error_response(exc.status_code, code, str(exc.detail))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CloudInferError, _domain_error)
    app.add_exception_handler(StoreError, _domain_error)
    app.add_exception_handler(LLMError, _llm_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
