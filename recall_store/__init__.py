"""Durable per-user storage of what Shadowdesk saw: an ObjectStore backend plus the EventLog on top."""

from __future__ import annotations

from recall_store import errors
from recall_store.config import StoreSettings
from recall_store.errors import InvalidNameError, ObjectNotFoundError, StoreError, StoreUnavailableError
from recall_store.event_log import EventLog, LoggedEvent
from recall_store.factory import open_store
from recall_store.local import LocalObjectStore
from recall_store.minio_store import MinioObjectStore
from recall_store.naming import user_bucket, validate_id, validate_key, validate_prefix
from recall_store.store import ObjectStore

__all__ = [
    "EventLog",
    "InvalidNameError",
    "LocalObjectStore",
    "LoggedEvent",
    "MinioObjectStore",
    "ObjectNotFoundError",
    "ObjectStore",
    "StoreError",
    "StoreSettings",
    "StoreUnavailableError",
    "errors",
    "open_store",
    "user_bucket",
    "validate_id",
    "validate_key",
    "validate_prefix",
]
