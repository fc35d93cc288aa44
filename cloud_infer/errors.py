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

They become gRPC status codes in ``cloud_infer.ingest.servicer`` and ``ErrorResponse`` JSON in
``cloud_infer.app``; recall_store errors are translated to these at those same edges.
"""

from __future__ import annotations


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
