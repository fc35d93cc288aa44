"""A runaway command end to end (scripts/break_desktop.sh cpu): detected, the cause names the process,
the user ends it from their notice, and the incident resolves; audited under the session's pseudonym.

A terminal on an Xvfb desktop runs one ``yes`` per core; the real agent streams to the real server. The
CPU rule holds 5 s here instead of 30 s, and a part clears 2 s after its finding (30 s by default), so
the test takes seconds; the thresholds are the default ones.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from cloud_infer.auth import issue_token
from harness.processes import TOKEN_SECRET, ServerProcess, ShadowdeskProcess, agent_env, wait_until
from shadowdesk_common.desktop import VirtualDesktop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USER, SESSION = "hugo-ops@example.com", "hugo-desk-1"


def test_a_runaway_command_is_found_named_and_ended_by_its_user(tmp_path: Path) -> None:
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(tmp_path / "store")}
    server = ServerProcess(
        {**store, "SHADOWDESK_DIAGNOSTICS_CPU_FOR_S": "5", "SHADOWDESK_DIAGNOSTICS_CLEAR_AFTER_S": "2"},
        tmp_path / "server.log",
        recall_enabled="false",
        llm_backend="none",
    )
    server.start()
    admin = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, 'ops-1', ['read', 'admin'])}"}
    user = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, USER, ['read', 'manage'])}"}
    hogs = " ".join(["yes >/dev/null &"] * (os.cpu_count() or 1))
    with VirtualDesktop() as desktop, httpx.Client(base_url=server.http_url, timeout=90) as api:
        terminal = desktop.launch(["xterm", "-T", "runaway", "-e", "sh", "-c", f"{hogs} sleep 300"])
        desktop.wait_for_window("runaway")
        token = issue_token(TOKEN_SECRET, USER, "ingest", session_id=SESSION)
        env = agent_env(
            server,
            token,
            USER,
            SESSION,
            tmp_path / "spool.sqlite3",
            sensors="apps,system_metrics",
            allowed_actions="kill_process",
        )
        agent = ShadowdeskProcess("agent", {**env, "DISPLAY": desktop.display}, tmp_path / "agent.log")
        agent.start()

        def saturated() -> list[dict[str, Any]]:
            reply = api.get("/v1/ops/incidents", params={"state": "all"}, headers=admin)
            assert reply.status_code == 200, reply.text
            return [i for i in reply.json()["incidents"] if i["rule"] == "cpu_saturated"]

        yes_pids = {p.pid for p in psutil.Process(terminal.pid).children(recursive=True) if p.name() == "yes"}
        try:
            assert len(yes_pids) == (os.cpu_count() or 1)
            wait_until(lambda: saturated(), 60, "the cpu_saturated incident")
            (incident,) = saturated()
            # First on a desktop of its own; a test machine also runs the server and the tests.
            assert any(c.startswith("yes (pid ") for c in incident["causes"][:2]), incident["causes"]

            def offered() -> list[dict[str, Any]]:
                notices = api.get("/v1/me/health", headers=user).json()["notices"]
                return [f for n in notices if n["incident_id"] == incident["incident_id"] for f in n["fixes"]]

            wait_until(offered, 10, "the user's fix")
            (fix,) = offered()
            assert fix["executable"] == "yes" and fix["pid"] in yes_pids, fix
            applied = api.post(f"/v1/me/health/{incident['incident_id']}/fixes/f1", headers=user)
            assert applied.status_code == 200 and applied.json()["status"] == "succeeded", applied.text
            wait_until(lambda: not psutil.pid_exists(fix["pid"]), 10, "the runaway process to end")
            # The other hogs end too (as a second fix would): the desktop is idle again.
            for pid in yes_pids - {fix["pid"]}:
                psutil.Process(pid).kill()
            wait_until(lambda: saturated()[0]["resolved_ns"] is not None, 60, "the resolution")

            audit = api.get("/v1/ops/audit", headers=admin).json()
            (entry,) = [e for e in audit["entries"] if e["action"] == "remediation.end_process.self"]
            assert audit["intact"] and USER not in str(entry) and entry["result"]["status"] == "succeeded"
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nagent: {agent.log()}\nserver: {server.log()}") from exc
        finally:
            agent.terminate()
            for pid in yes_pids:
                if psutil.pid_exists(pid):
                    psutil.Process(pid).kill()
            desktop.kill(terminal)
            server.terminate()
