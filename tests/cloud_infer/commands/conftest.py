"""The downlink's test rig: a real gRPC ingest server with commands and its fan-out, over a real store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cloud_infer.config import ServerSettings
from tests.support.cloud import FaultyStore
from tests.support.command_stack import CommandStack, start_stack
from tests.support.commands_agent import TestAgent


@pytest.fixture
async def stack(settings: ServerSettings, store: FaultyStore) -> AsyncIterator[CommandStack]:
    running = await start_stack(settings, store)
    yield running
    await running.stop()


@pytest.fixture
def agent(stack: CommandStack, user: str, session: str) -> TestAgent:
    return TestAgent(stack.target, user, session)
