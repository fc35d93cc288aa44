"""Errors raised by the session agent.

AgentError                     base of everything below
├── SpoolError                 the local spool cannot be opened, read or written (sqlite3 errors, disk)
│   └── SpoolSessionMismatchError  the spool file holds another session's events
├── SensorError                a sensor cannot reach its source (X display, screen grabber)
└── StreamError                the ingest stream failed; ``retryable`` says whether to reconnect soon
    ├── AckTimeoutError        the cloud did not acknowledge a batch within ack_timeout_s (retryable)
    └── StreamRejectedError    the cloud refused the agent: bad token, permission, argument (not retryable)

Lower-level exceptions (sqlite3.Error, Xlib errors, grpc.aio.AioRpcError) are translated to these at
the module that talks to them, so callers only handle AgentError.
"""

from __future__ import annotations

import grpc


class AgentError(Exception):
    """Base class for session agent errors."""


class SpoolError(AgentError):
    """The durable spool failed."""


class SpoolSessionMismatchError(SpoolError):
    """The spool file was written for a different session."""


class SensorError(AgentError):
    """A sensor cannot reach what it senses."""


class StreamError(AgentError):
    """The ingest stream broke; ``code`` is the gRPC status code when there was one."""

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class AckTimeoutError(StreamError):
    """No Ack arrived in time for a sent batch."""


class StreamRejectedError(StreamError):
    """The cloud refused this agent; retrying soon would not help."""

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message, code=code, retryable=False)
