"""Fixtures shared by every test suite: real servers, started once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.minio import MinioServer
from recall_store.config import StoreSettings


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """A real MinIO on 127.0.0.1 shared by the session; tests keep apart by using their own user ids."""
    data_dir: Path = tmp_path_factory.mktemp("minio") / "data"
    with MinioServer(data_dir) as server:
        yield server


@pytest.fixture
def minio_settings(minio_server: MinioServer) -> StoreSettings:
    """StoreSettings(backend="minio") for the session MinIO; call minio_server.settings(...) to override."""
    return minio_server.settings()


@pytest.fixture(params=["local", pytest.param("minio", marks=pytest.mark.e2e)])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSettings:
    """Settings of each real backend in turn: the local store in tmp_path, then the session MinIO."""
    if request.param == "minio":
        server: MinioServer = request.getfixturevalue("minio_server")
        return server.settings(timeout_s=20)
    return StoreSettings(backend="local", local_root=tmp_path / "store", workers=8)
