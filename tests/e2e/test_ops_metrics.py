"""Ops metrics end to end: the real agent's system metrics reach the real server's Prometheus scrape.

``shadowdesk agent`` (system metrics only, every 0.5 s) streams to ``shadowdesk server`` with
``SHADOWDESK_OTEL_PROMETHEUS=true`` and a disk rule set below this machine's real disk use, so the
desktop's real samples open a ``disk_full`` incident. ``GET /v1/ops/metrics`` (admin token) then shows
the session's metrics under its pseudonym and the open incident, and never whose session it is.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from cloud_infer.auth import issue_token
from cloud_infer.diagnostics.service import pseudonym, pseudonym_key
from harness.processes import TOKEN_SECRET, ServerProcess, ShadowdeskProcess, agent_env, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USER, SESSION = "dora-ops@example.com", "dora-desk-7"


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of metric ``name`` whose labels include ``labels`` (OpenTelemetry adds its scope's)."""
    for line in text.splitlines():
        found = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if found and all(f'{key}="{value}"' in found.group(1) for key, value in labels.items()):
            return float(found.group(2))
    return None


def test_the_agents_metrics_and_an_incident_they_open_are_scraped_by_pseudonym(tmp_path: Path) -> None:
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(tmp_path / "store")}
    server = ServerProcess(
        # Any disk in use is "full" here: the desktop's real samples open the incident.
        {**store, "SHADOWDESK_OTEL_PROMETHEUS": "true", "SHADOWDESK_DIAGNOSTICS_DISK_USED_PERCENT": "0.1"},
        tmp_path / "server.log",
        recall_enabled="false",
    )
    server.start()
    token = issue_token(TOKEN_SECRET, USER, "ingest", session_id=SESSION)
    env = agent_env(
        server,
        token,
        USER,
        SESSION,
        tmp_path / "spool.sqlite3",
        sensors="system_metrics",
        metrics_interval_s="0.5",
    )
    agent = ShadowdeskProcess("agent", env, tmp_path / "agent.log")
    agent.start()
    admin = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, 'ops-1', ['read', 'admin'])}"}
    subject = pseudonym(pseudonym_key(TOKEN_SECRET), USER, SESSION)
    try:
        with httpx.Client(base_url=server.http_url, timeout=10) as api:

            def scraped() -> str:
                reply = api.get("/v1/ops/metrics", headers=admin)
                assert reply.status_code == 200, reply.text
                return reply.text

            try:
                wait_until(
                    lambda: sample(scraped(), "shadowdesk_incidents_open", rule="disk_full") == 1, 60, "it"
                )
            except AssertionError as exc:
                raise AssertionError(
                    f"{scraped()[-2000:]}\nagent: {agent.log()}\nserver: {server.log()}"
                ) from exc
            text = scraped()
            assert sample(text, "shadowdesk_incidents_open", rule="memory_pressure") == 0
            disk = sample(text, "shadowdesk_session_disk_used_percent", session=subject)
            assert disk is not None and 0.1 <= disk <= 100, text[-3000:]
            cpu = sample(text, "shadowdesk_session_cpu_percent", session=subject)
            assert cpu is not None and 0 <= cpu <= 100, text[-3000:]
            for leak in (USER, SESSION, "dora"):
                assert leak not in text
            (incident,) = api.get("/v1/ops/incidents", headers=admin).json()["incidents"]
            assert incident["rule"] == "disk_full" and incident["sessions"][0]["subject"] == subject
            reader = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, USER, 'read')}"}
            assert api.get("/v1/ops/metrics", headers=reader).status_code == 403
            assert api.get("/v1/ops/metrics").status_code == 401
    finally:
        agent.terminate()
        server.terminate()
