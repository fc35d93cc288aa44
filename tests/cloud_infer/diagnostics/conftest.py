"""The ``desk`` fixture: a real server with diagnostics and remediation, and a test agent on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cloud_infer.config import ServerSettings
from tests.support.cloud import FaultyStore
from tests.support.diagnostics_desk import Desk, open_desk


@pytest.fixture
async def desk(settings: ServerSettings, store: FaultyStore, user: str, session: str) -> AsyncIterator[Desk]:
    async with open_desk(settings, store, user, session) as opened:
        yield opened
