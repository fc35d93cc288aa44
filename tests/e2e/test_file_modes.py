"""The real server with the local store keeps every file it writes private: the store's own objects and
directories, and the LanceDB index files written under the same root, have no group or other bits."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from cloud_infer.auth import issue_token
from cloud_infer.recall.index import INDEX_PREFIX, TABLE
from cloud_infer.recall.pipeline import state_key
from harness.processes import TOKEN_SECRET, ServerProcess
from recall_store import user_bucket
from tests.support.cloud import AgentStream, focus, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NS = 1_000_000_000
INDEX_DEADLINE_S = 120.0  # the first row loads the embedding model
STOP_DEADLINE_S = 60.0  # a loaded machine may still be folding the first rows into the index


def loose_modes(root: Path) -> dict[str, str]:
    """Every file and directory under ``root`` (itself included) with any group or other bit set."""
    loose = {}
    for dirpath, _dirs, files in os.walk(root):
        for path in [Path(dirpath), *(Path(dirpath) / name for name in files)]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode & 0o077:
                loose[str(path.relative_to(root))] = oct(mode)
    return loose


async def test_the_server_writes_only_private_files_into_the_local_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store_env = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(root)}
    server = ServerProcess(store_env, tmp_path / "server.log", llm_backend="none")
    previous = os.umask(0o022)  # the usual umask, inherited by the server: it must not rely on it
    try:
        server.start()
    finally:
        os.umask(previous)

    user, session = "modes-alice", "modes-desk"
    space = root / user_bucket(user)
    index_data = space / INDEX_PREFIX / f"{TABLE}.lance" / "data"
    try:
        token = issue_token(TOKEN_SECRET, user, "ingest", session_id=session, ttl_s=600)
        agent = AgentStream(server.grpc_address, token)
        try:
            await agent.open(user, session)
            t0 = time.time_ns()
            events = [
                focus(1, t0, "mousepad", "plan.txt - Mousepad"),
                focus(2, t0 + NS, "xterm", "shell", window_id=8),
            ]
            assert await agent.ack(events) == 2
        finally:
            await agent.close()
        # The recall state is written after the rows are in the index.
        await wait_for(
            lambda: (space / state_key(session)).is_file() and any(index_data.glob("*.lance")),
            INDEX_DEADLINE_S,
        )
    finally:
        exit_code = server.terminate(timeout_s=STOP_DEADLINE_S)
    assert exit_code == 0, server.log()

    assert any((space / "events" / session).iterdir())  # the store's own files are there too
    assert loose_modes(root) == {}
