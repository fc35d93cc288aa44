"""Errors raised by cloud_infer.

CloudInferError                 base of everything below
├── AuthError                   the caller is not who it must be
│   ├── TokenInvalidError       token missing, malformed, badly signed, or of the wrong scope
│   ├── TokenExpiredError       token past its expiry time
│   └── PermissionDeniedError   valid token, but for another user or session than the request names
├── InvalidMessageError         an agent message or HTTP request breaks the protocol
├── MessageTooLargeError        a message or batch exceeds a configured limit
├── RateLimitedError            a per-user limit refused it for now; retry after ``retry_after_s``
├── QuotaExceededError          the user's space is over its storage quota
├── NotFoundError               the requested frame does not exist for this user
└── BackendUnavailableError     the recall store failed or missed its deadline; retry later

Every edge answers from one table, ``ERRORS``: ``error_code`` names an exception's ``ErrorCode`` (these,
the LLM gateway's ``cloud_infer.llm.errors`` and recall_store's errors alike; anything else is
``internal``), and the code's row gives the HTTP status of its ``ErrorResponse`` (``cloud_infer.api_errors``),
the close code of a websocket (in-band ``error`` messages carry the code itself), the gRPC status of an
ingest stream (``cloud_infer.ingest.servicer``) and whether a client should retry. The agent retries
exactly the retryable gRPC statuses (``session_agent.errors.CLOUD_RETRYABLE``); docs/protocol.md#errors
is the same table, and tests/cloud_infer/test_error_table.py keeps all of them in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import grpc

from cloud_infer.llm.errors import LLMError, LLMRateLimitedError, LLMTimeoutError, LLMUnavailableError
from recall_store.errors import InvalidNameError, ObjectNotFoundError, StoreUnavailableError


class CloudInferError(Exception):
    """Base class for cloud_infer errors."""


class AuthError(CloudInferError):
    """Authentication or authorization failed."""


class TokenInvalidError(AuthError):
    """The token is missing, malformed, badly signed, or has the wrong scope."""


class TokenExpiredError(AuthError):
    """The token has expired."""


class PermissionDeniedError(AuthError):
    """The token is valid but does not cover what was asked."""


class InvalidMessageError(CloudInferError, ValueError):
    """A message or request is not valid under the protocol."""


class MessageTooLargeError(CloudInferError):
    """A message or batch is larger than the configured limit."""


class RateLimitedError(CloudInferError):
    """A per-user rate or concurrency limit refused the request."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QuotaExceededError(CloudInferError):
    """The user's space holds as much as their quota allows."""


class NotFoundError(CloudInferError):
    """The requested object does not exist."""


class BackendUnavailableError(CloudInferError):
    """The store is unavailable; the caller should retry."""


class ErrorCode(StrEnum):
    """The stable, machine-readable code of an error, the same over HTTP, websockets and in the docs."""

    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    LLM_FAILED = "llm_failed"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class ErrorEdges:
    """How one ``ErrorCode`` is answered at each edge."""

    http: int
    websocket: int  # close code
    grpc: grpc.StatusCode
    retryable: bool  # the same request may succeed later: the agent reconnects, a client retries


_WS_POLICY_VIOLATION = 1008  # RFC 6455 close codes; 4001 is Shadowdesk's "refresh the token"
_WS_TOO_BIG = 1009
_WS_INTERNAL = 1011
_WS_TRY_AGAIN_LATER = 1013
_WS_BAD_GATEWAY = 1014

ERRORS: Mapping[ErrorCode, ErrorEdges] = {
    ErrorCode.UNAUTHENTICATED: ErrorEdges(401, 4001, grpc.StatusCode.UNAUTHENTICATED, False),
    ErrorCode.PERMISSION_DENIED: ErrorEdges(
        403, _WS_POLICY_VIOLATION, grpc.StatusCode.PERMISSION_DENIED, False
    ),
    ErrorCode.INVALID_ARGUMENT: ErrorEdges(
        400, _WS_POLICY_VIOLATION, grpc.StatusCode.INVALID_ARGUMENT, False
    ),
    ErrorCode.NOT_FOUND: ErrorEdges(404, _WS_POLICY_VIOLATION, grpc.StatusCode.NOT_FOUND, False),
    # RESOURCE_EXHAUSTED is retried: the agent sizes its batches by Welcome, so for an agent it means
    # "over a limit of the user for now" (streams, quota), and its events wait in the spool.
    ErrorCode.TOO_LARGE: ErrorEdges(413, _WS_TOO_BIG, grpc.StatusCode.RESOURCE_EXHAUSTED, True),
    ErrorCode.RATE_LIMITED: ErrorEdges(429, _WS_TRY_AGAIN_LATER, grpc.StatusCode.RESOURCE_EXHAUSTED, True),
    ErrorCode.QUOTA_EXCEEDED: ErrorEdges(507, _WS_POLICY_VIOLATION, grpc.StatusCode.RESOURCE_EXHAUSTED, True),
    ErrorCode.UNAVAILABLE: ErrorEdges(503, _WS_TRY_AGAIN_LATER, grpc.StatusCode.UNAVAILABLE, True),
    ErrorCode.TIMEOUT: ErrorEdges(504, _WS_TRY_AGAIN_LATER, grpc.StatusCode.DEADLINE_EXCEEDED, True),
    ErrorCode.LLM_FAILED: ErrorEdges(502, _WS_BAD_GATEWAY, grpc.StatusCode.INTERNAL, True),
    ErrorCode.INTERNAL: ErrorEdges(500, _WS_INTERNAL, grpc.StatusCode.INTERNAL, True),
}

# Most specific first: PermissionDeniedError is an AuthError, LLMTimeoutError an LLMError.
_CODES: tuple[tuple[type[BaseException], ErrorCode], ...] = (
    (PermissionDeniedError, ErrorCode.PERMISSION_DENIED),
    (AuthError, ErrorCode.UNAUTHENTICATED),
    (InvalidMessageError, ErrorCode.INVALID_ARGUMENT),
    (InvalidNameError, ErrorCode.INVALID_ARGUMENT),
    (MessageTooLargeError, ErrorCode.TOO_LARGE),
    (RateLimitedError, ErrorCode.RATE_LIMITED),
    (LLMRateLimitedError, ErrorCode.RATE_LIMITED),
    (QuotaExceededError, ErrorCode.QUOTA_EXCEEDED),
    (NotFoundError, ErrorCode.NOT_FOUND),
    (ObjectNotFoundError, ErrorCode.NOT_FOUND),
    (BackendUnavailableError, ErrorCode.UNAVAILABLE),
    (StoreUnavailableError, ErrorCode.UNAVAILABLE),
    (LLMUnavailableError, ErrorCode.UNAVAILABLE),
    (LLMTimeoutError, ErrorCode.TIMEOUT),
    (LLMError, ErrorCode.LLM_FAILED),
)


def error_code(error: BaseException | type[BaseException]) -> ErrorCode:
    """The code of an error (or error class); ``internal`` for anything not in the table."""
    kind = error if isinstance(error, type) else type(error)
    for base, code in _CODES:
        if issubclass(kind, base):
            return code
    return ErrorCode.INTERNAL
