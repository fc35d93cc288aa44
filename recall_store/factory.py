"""Builds the configured ObjectStore backend."""

from __future__ import annotations

from recall_store.config import StoreSettings
from recall_store.local import LocalObjectStore
from recall_store.minio_store import MinioObjectStore
from recall_store.store import ObjectStore


def open_store(settings: StoreSettings) -> ObjectStore:
    """Return the backend that ``settings.backend`` names; it opens no connection until first used."""
    if settings.backend == "minio":
        return MinioObjectStore(settings)
    return LocalObjectStore(settings.local_root, settings.workers)
