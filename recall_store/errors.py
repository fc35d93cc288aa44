"""Errors raised by recall_store.

StoreError                 base of everything below
├── InvalidNameError       a user id, session id or key breaks the naming rule (recall_store.naming)
├── ObjectNotFoundError    the object does not exist in that user's space
└── StoreUnavailableError  the backend could not be reached or failed within its deadline

Backend-specific exceptions (minio.S3Error, urllib3 errors, OSError) are translated to these at the
backend boundary, so callers never import a backend's exception types.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class for recall_store errors."""


class InvalidNameError(StoreError, ValueError):
    """A user id, session id or object key is not allowed."""


class ObjectNotFoundError(StoreError, KeyError):
    """The requested object does not exist."""


class StoreUnavailableError(StoreError):
    """The backend is down, too slow, or out of space."""
