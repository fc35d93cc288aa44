"""StoreSettings from the environment, the default-secret guard, and backend selection."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

import recall_store
from recall_store import LocalObjectStore, MinioObjectStore, StoreSettings, open_store


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHADOWDESK_STORE_BACKEND", "minio")
    monkeypatch.setenv("SHADOWDESK_STORE_MINIO_ENDPOINT", "127.0.0.1:9100")
    monkeypatch.setenv("SHADOWDESK_STORE_MINIO_SECRET_KEY", "s3cret-s3cret")
    monkeypatch.setenv("SHADOWDESK_STORE_TIMEOUT_S", "2.5")
    monkeypatch.setenv("SHADOWDESK_STORE_LOCAL_ROOT", str(tmp_path))
    settings = StoreSettings()
    assert settings.backend == "minio"
    assert settings.minio_endpoint == "127.0.0.1:9100"
    assert settings.minio_secret_key.get_secret_value() == "s3cret-s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.timeout_s == 2.5
    assert settings.local_root == tmp_path
    assert StoreSettings(timeout_s=7).timeout_s == 7  # an argument beats the environment


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pydantic.ValidationError, match="backend"):
        StoreSettings(backend="s3")  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError, match="timeout_s"):
        StoreSettings(timeout_s=0)
    with pytest.raises(pydantic.ValidationError, match="workers"):
        StoreSettings(workers=0)


def test_default_secret_is_refused_for_a_remote_minio() -> None:
    with pytest.raises(pydantic.ValidationError, match="SHADOWDESK_STORE_MINIO_SECRET_KEY"):
        StoreSettings(backend="minio", minio_endpoint="minio.internal:9000")
    StoreSettings(backend="minio", minio_endpoint="localhost:9000")
    StoreSettings(backend="local", minio_endpoint="minio.internal:9000")


async def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    local = open_store(StoreSettings(backend="local", local_root=tmp_path))
    remote = open_store(StoreSettings(backend="minio"))
    try:
        assert isinstance(local, LocalObjectStore)
        assert isinstance(remote, MinioObjectStore)
    finally:
        await local.close()
        await remote.close()


def test_public_names_are_exported() -> None:
    for name in recall_store.__all__:
        assert getattr(recall_store, name) is not None
    assert {"ObjectStore", "StoreSettings", "open_store", "EventLog", "user_bucket"} <= set(
        recall_store.__all__
    )
