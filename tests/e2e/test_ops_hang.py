"""An app frozen with SIGSTOP end to end: the real agent's ping goes unanswered, the server opens an
``app_hang`` incident naming the app's process as not running, and it resolves once the app answers.

A real X client that answers ``_NET_WM_PING`` (``tests/support/ping_app.py``) on an Xvfb desktop, the real
agent (``desktop_health``, ``apps``, ``system_metrics``) streaming to the real server over gRPC.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_infer.auth import issue_token
from harness.processes import TOKEN_SECRET, ServerProcess, ShadowdeskProcess, agent_env, wait_until
from shadowdesk_common.desktop import VirtualDesktop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PING_APP = Path(__file__).parents[1] / "support" / "ping_app.py"
USER, SESSION = "gwen-ops@example.com", "gwen-desk-3"


def test_an_app_frozen_with_sigstop_is_an_app_hang_incident_that_resolves_when_it_answers(
    tmp_path: Path,
) -> None:
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(tmp_path / "store")}
    # A part clears 2 s after its finding stops holding (30 s by default), so the test sees the resolution.
    server = ServerProcess(
        {**store, "SHADOWDESK_DIAGNOSTICS_CLEAR_AFTER_S": "2"},
        tmp_path / "server.log",
        recall_enabled="false",
    )
    server.start()
    admin = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, 'ops-1', ['read', 'admin'])}"}
    with VirtualDesktop() as desktop, httpx.Client(base_url=server.http_url, timeout=10) as api:
        app = desktop.launch([sys.executable, str(PING_APP), "frozen-ledger"])
        desktop.wait_for_window("frozen-ledger")
        token = issue_token(TOKEN_SECRET, USER, "ingest", session_id=SESSION)
        env = agent_env(
            server,
            token,
            USER,
            SESSION,
            tmp_path / "spool.sqlite3",
            sensors="desktop_health,apps,system_metrics",
        )
        agent = ShadowdeskProcess("agent", {**env, "DISPLAY": desktop.display}, tmp_path / "agent.log")
        agent.start()

        def hangs() -> list[dict[str, Any]]:
            reply = api.get("/v1/ops/incidents", params={"state": "all"}, headers=admin)
            assert reply.status_code == 200, reply.text
            return [i for i in reply.json()["incidents"] if i["rule"] == "app_hang"]

        try:
            wait_until(lambda: "streaming to" in agent.log(), 60, "the agent's stream")
            time.sleep(3)  # pings answered meanwhile: no hang of a running app
            assert hangs() == []
            os.kill(app.pid, signal.SIGSTOP)
            stopped = time.monotonic()
            try:
                wait_until(lambda: hangs(), 20, "the hang incident")
                opened_after_s = time.monotonic() - stopped
                (incident,) = hangs()
                assert (incident["app_id"], incident["severity"], incident["resolved_ns"]) == (
                    "pingapp",
                    "critical",
                    None,
                )
                (part,) = incident["sessions"]
                assert part["pid"] == app.pid and part["executable"].startswith("python")
                assert incident["causes"][0].startswith(
                    f"{part['executable']} (pid {app.pid}) is not running"
                )
                assert [e["kind"] for e in incident["events"]][:1] == ["hung"]
                assert opened_after_s < 10, opened_after_s
            finally:
                os.kill(app.pid, signal.SIGCONT)
            wait_until(lambda: hangs()[0]["resolved_ns"] is not None, 20, "the resolution")
            assert "recovered" in [e["kind"] for e in hangs()[0]["events"]]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nagent: {agent.log()}\nserver: {server.log()}") from exc
        finally:
            agent.terminate()
            desktop.kill(app)
            server.terminate()
