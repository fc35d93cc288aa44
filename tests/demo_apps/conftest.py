"""Fixtures of the fixture apps' tests: a real portal served on port 0, with its own database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from demo_apps.expense_portal import PortalConfig, PortalDatabase, PortalServer

USER, PASSWORD = "alice", "expenses-2025"
OTHER, OTHER_PASSWORD = "bob", "bob-password-1"


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[PortalServer]:
    config = PortalConfig(database=tmp_path / "portal.sqlite3", users={USER: PASSWORD, OTHER: OTHER_PASSWORD})
    with PortalServer(config) as server:
        yield server


@pytest.fixture
def database(portal: PortalServer) -> Iterator[PortalDatabase]:
    """The portal's database, read through a connection of the test's own."""
    db = PortalDatabase(portal.config.database)
    yield db
    db.close()


def signed_in(portal: PortalServer, user: str = USER, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=portal.url, follow_redirects=True, timeout=30)
    reply = client.post("/login", data={"username": user, "password": password, "next": "/claims/new"})
    assert reply.status_code == 200 and reply.url.path.endswith("/page/1"), reply.text
    return client
