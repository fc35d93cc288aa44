"""Errors raised by the session agent.

AgentError                     base of everything below
├── SpoolError                 the local spool cannot be opened, read or written (sqlite3 errors, disk)
│   └── SpoolSessionMismatchError  the spool file holds another session's events
├── SensorError                a sensor cannot reach its source (X display, screen grabber)
├── StreamError                the ingest stream failed; ``retryable`` says whether to reconnect soon
│   ├── AckTimeoutError        the cloud did not acknowledge a batch within ack_timeout_s (retryable)
│   └── StreamRejectedError    the cloud refused the agent: bad token, permission, argument (not retryable)
└── ExecutorError              a command was not carried out; becomes its CommandResult status and error
    ├── ActionRefusedError     the agent's rules refuse it (allow-list, password field, private window,
    │                          process guards): STATUS_REFUSED, nothing was done
    ├── ActionFailedError      the desktop did not do it (no such window or element, timed out): STATUS_FAILED
    └── CommandCancelledError  a CancelCommand, or the agent stopping, stopped it between two steps

Lower-level exceptions (sqlite3.Error, Xlib errors, grpc.aio.AioRpcError, D-Bus errors, psutil errors)
are translated to these at the module that talks to them, so callers only handle AgentError. A stream the
cloud ends with a status in ``RETRYABLE_CODES`` is a ``StreamError`` (reconnect with backoff), any other a
``StreamRejectedError`` (``stream_error``). An ExecutorError's message and ``observed`` go to the cloud in
the CommandResult: they never hold a secret or the text of a password field.
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


# The statuses the cloud answers for a failure that may pass: the retryable rows of its error table
# (cloud_infer.errors.ERRORS, docs/protocol.md#errors). The agent cannot import the cloud's package, so
# tests/cloud_infer/test_error_table.py keeps the two equal.
CLOUD_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
    }
)
# What the cloud never answers on purpose, but grpc, a proxy or a restarting server gives for a broken link.
TRANSPORT_FAILURES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.DATA_LOSS,
    }
)
RETRYABLE_CODES = CLOUD_RETRYABLE | TRANSPORT_FAILURES


def stream_error(code: grpc.StatusCode, message: str) -> StreamError:
    """The error of a stream that ended with ``code``: retryable, or a rejection."""
    if code in RETRYABLE_CODES:
        return StreamError(message, code=code)
    return StreamRejectedError(message, code=code)


class ExecutorError(AgentError):
    """A command was not carried out; ``observed`` is what the agent saw on the way (may be empty)."""

    def __init__(self, message: str, *, observed: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.observed = dict(observed or {})


class ActionRefusedError(ExecutorError):
    """The agent's own rules refuse the command; nothing was done."""


class ActionFailedError(ExecutorError):
    """The action could not be done on the desktop (or not within its time)."""


class CommandCancelledError(ExecutorError):
    """The command was stopped between two of its steps (cancelled, or the agent is stopping)."""
