"""Fixtures of the fixture apps' tests: a real portal served on port 0, with its own database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from demo_apps.expense_portal import PortalConfig, PortalDatabase, PortalServer
from tests.support.portal import OTHER, OTHER_PASSWORD, PASSWORD, USER


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
