"""Fleet correlation end to end: one app crash-looping on two desktops is ONE incident with both sessions.

Two Xvfb desktops, each with the real agent (``shadowdesk agent``: process faults and system metrics)
streaming over gRPC to the real server (``shadowdesk server``, diagnostics on its committed stream). On
each desktop the same app (``crashy``: a link to this machine's Python, so one build everywhere) dies
by SIGSEGV four times a second apart. The agents see each crash through the proc connector, the server
finds a crash loop (3 crashes within 120 s) in each session, and both join one incident by signature
(rule + app + version). An admin reads it over HTTP: both pseudonyms, the crashes as process events
with their signal, and an explanation that names the app, never whose sessions they are.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_infer.auth import issue_token
from cloud_infer.diagnostics.service import pseudonym, pseudonym_key
from harness.processes import TOKEN_SECRET, ServerProcess, ShadowdeskProcess, agent_env, wait_until
from shadowdesk_common.desktop import VirtualDesktop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SESSIONS = (("erin-ops@example.com", "erin-desk-1"), ("finn-ops@example.com", "finn-desk-2"))
CRASH = (
    "import os, resource, signal, time; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "
    "time.sleep(0.2); os.kill(os.getpid(), signal.SIGSEGV)"
)


def crash_loops(incidents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in incidents if i["rule"] == "crash_loop" and i["app_id"] == "crashy"]


def test_one_app_crash_looping_on_two_desktops_is_one_incident_with_both_sessions(tmp_path: Path) -> None:
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(tmp_path / "store")}
    server = ServerProcess(store, tmp_path / "server.log", recall_enabled="false")
    server.start()
    crashy = tmp_path / "crashy"
    crashy.symlink_to(os.path.realpath(sys.executable))
    agents: list[ShadowdeskProcess] = []
    admin = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, 'ops-1', ['read', 'admin'])}"}
    with VirtualDesktop() as first, VirtualDesktop() as second, httpx.Client(base_url=server.http_url) as api:
        desktops = (first, second)
        try:
            for index, (desktop, (user, session)) in enumerate(zip(desktops, SESSIONS, strict=True)):
                token = issue_token(TOKEN_SECRET, user, "ingest", session_id=session)
                spool = tmp_path / f"spool-{index}.sqlite3"
                env = agent_env(server, token, user, session, spool, sensors="process_faults,system_metrics")
                agent = ShadowdeskProcess(
                    "agent", {**env, "DISPLAY": desktop.display}, tmp_path / f"a{index}.log"
                )
                agent.start()
                agents.append(agent)
            for agent in agents:
                wait_until(lambda agent=agent: "streaming to" in agent.log(), 60, "the agent's stream")  # type: ignore[misc]
            loops = [
                subprocess.Popen(
                    ["sh", "-c", f"for n in 1 2 3 4; do {crashy} -c '{CRASH}'; sleep 1; done"],
                    env={**os.environ, **desktop.env},
                )
                for desktop in desktops
            ]
            for loop in loops:
                assert loop.wait(60) == 0

            def incidents() -> list[dict[str, Any]]:
                reply = api.get("/v1/ops/incidents", params={"state": "all"}, headers=admin, timeout=10)
                assert reply.status_code == 200, reply.text
                found: list[dict[str, Any]] = reply.json()["incidents"]
                return found

            try:
                wait_until(
                    lambda: any(len(i["sessions"]) == 2 for i in crash_loops(incidents())), 60, "one incident"
                )
            except AssertionError as exc:
                logs = "\n".join(agent.log() for agent in agents)
                raise AssertionError(f"{incidents()}\n{logs}\n{server.log()}") from exc
            (incident,) = crash_loops(incidents())
            key = pseudonym_key(TOKEN_SECRET)
            assert {s["subject"] for s in incident["sessions"]} == {pseudonym(key, u, s) for u, s in SESSIONS}
            assert (
                incident["signature"].startswith("crash_loop|app=crashy|version=") and incident["app_version"]
            )
            assert incident["severity"] == "critical"
            crashes = [e for e in incident["events"] if e["kind"] == "crashed"]
            assert len({e["subject"] for e in crashes}) == 2
            assert all(e["signal"] == signal.SIGSEGV and e["executable"] == "crashy" for e in crashes)
            assert incident["explanation"].startswith("2 sessions are affected. crashy crashed")
            assert "SIGSEGV" in incident["explanation"] and "crash loop" in incident["explanation"]
            text = api.get(f"/v1/ops/incidents/{incident['incident_id']}", headers=admin, timeout=10).text
            for leak in (*(u for u, _ in SESSIONS), *(s for _, s in SESSIONS), "erin", "finn"):
                assert leak not in text
        finally:
            for agent in agents:
                agent.terminate()
            server.terminate()
