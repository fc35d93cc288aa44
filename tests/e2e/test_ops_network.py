"""A slow or lossy link between a desktop and the cloud end to end: Toxiproxy delays the agent's gRPC
stream, or drops every byte for 30 s; the agent measures its own round trip and how long its batches
wait, and the server opens a ``link_degraded`` incident (for the loss burst once the link is back and
the spooled samples arrive). Nothing is lost on the way: the cloud acknowledges every event.

The real agent (metrics only, no desktop needed) streams to the real server through a real Toxiproxy
(scripts/toxiproxy.sh); a part clears 2 s after its finding (30 s by default), so the test sees the
resolution. The thresholds are the default ones (acks over 2000 ms for 10 s).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_infer.auth import issue_token
from harness.processes import TOKEN_SECRET, ServerProcess, ShadowdeskProcess, agent_env, wait_until
from harness.toxiproxy import ToxiproxyServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USER, SESSION = "ines-ops@example.com", "ines-desk-2"


def test_a_delayed_link_is_a_link_degraded_incident_that_resolves_when_the_delay_goes(tmp_path: Path) -> None:
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(tmp_path / "store")}
    server = ServerProcess(
        {**store, "SHADOWDESK_DIAGNOSTICS_CLEAR_AFTER_S": "2"},
        tmp_path / "server.log",
        recall_enabled="false",
        llm_backend="none",
    )
    server.start()
    admin = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, 'ops-1', ['read', 'admin'])}"}
    with (
        ToxiproxyServer(tmp_path / "toxiproxy.log") as toxiproxy,
        httpx.Client(base_url=server.http_url, timeout=10) as api,
    ):
        listen = toxiproxy.proxy("cloud", server.grpc_address)
        token = issue_token(TOKEN_SECRET, USER, "ingest", session_id=SESSION)
        env = agent_env(server, token, USER, SESSION, tmp_path / "spool.sqlite3", sensors="system_metrics")
        # The agent's deadlines are longer than the delay: slow is not down.
        env |= {"SHADOWDESK_AGENT_SERVER": listen, "SHADOWDESK_AGENT_ACK_TIMEOUT_S": "30"}
        agent = ShadowdeskProcess("agent", env, tmp_path / "agent.log")
        agent.start()

        def degraded() -> list[dict[str, Any]]:
            reply = api.get("/v1/ops/incidents", params={"state": "all"}, headers=admin)
            assert reply.status_code == 200, reply.text
            return [i for i in reply.json()["incidents"] if i["rule"] == "link_degraded"]

        try:
            wait_until(lambda: "streaming to" in agent.log(), 60, "the agent's stream")
            wait_until(lambda: api.get("/v1/ops/sessions", headers=admin).json()["sessions"], 30, "samples")
            assert degraded() == []
            toxiproxy.add_latency("cloud", 1500)  # each way: an ack comes 3 s after its batch
            wait_until(lambda: degraded(), 90, "the link_degraded incident")
            (incident,) = degraded()
            assert incident["resolved_ns"] is None and incident["severity"] == "warning"
            assert incident["sessions"][0]["peak"] > 2000, incident["sessions"]
            toxiproxy.remove_latency("cloud")
            wait_until(lambda: degraded()[0]["resolved_ns"] is not None, 90, "the resolution")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nagent: {agent.log()[-4000:]}\nserver: {server.log()[-4000:]}"
            ) from exc
        finally:
            agent.terminate()
            server.terminate()


def test_a_loss_burst_is_a_link_degraded_incident_and_nothing_is_lost(tmp_path: Path) -> None:
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(tmp_path / "store")}
    server = ServerProcess(store, tmp_path / "server.log", recall_enabled="false", llm_backend="none")
    server.start()
    admin = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, 'ops-1', ['read', 'admin'])}"}
    spool = tmp_path / "spool.sqlite3"
    with (
        ToxiproxyServer(tmp_path / "toxiproxy.log") as toxiproxy,
        httpx.Client(base_url=server.http_url, timeout=10) as api,
    ):
        listen = toxiproxy.proxy("cloud", server.grpc_address)
        token = issue_token(TOKEN_SECRET, USER, "ingest", session_id=SESSION)
        env = agent_env(server, token, USER, SESSION, spool, sensors="system_metrics")
        env |= {"SHADOWDESK_AGENT_SERVER": listen}  # default deadlines: the agent reconnects on its own
        agent = ShadowdeskProcess("agent", env, tmp_path / "agent.log")
        agent.start()

        def degraded() -> list[dict[str, Any]]:
            reply = api.get("/v1/ops/incidents", params={"state": "all"}, headers=admin)
            assert reply.status_code == 200, reply.text
            return [i for i in reply.json()["incidents"] if i["rule"] == "link_degraded"]

        try:
            wait_until(lambda: "streaming to" in agent.log(), 60, "the agent's stream")
            wait_until(lambda: api.get("/v1/ops/sessions", headers=admin).json()["sessions"], 30, "samples")
            toxiproxy.drop_everything("cloud")
            # Nothing gets through: acks stop, samples wait in the spool. Routine samples go out every
            # 10 s, so the link reads slow from 0-10 s into the burst; 30 s is sure to hold it 10 s.
            time.sleep(30)
            assert degraded() == []  # the cloud cannot hear about a link it does not hear from
            toxiproxy.restore("cloud")
            wait_until(lambda: degraded(), 90, "the link_degraded incident, once the samples arrive")
            (incident,) = degraded()
            assert incident["sessions"][0]["peak"] > 10_000, incident["sessions"]
            # Every event of the burst was resent and stored: the cloud acked all the agent wrote.
            wait_until(lambda: _spool_meta(spool, "acked_seq") == _spool_meta(spool, "last_seq"), 60, "acks")
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nagent: {agent.log()[-4000:]}\nserver: {server.log()[-4000:]}"
            ) from exc
        finally:
            agent.terminate()
            server.terminate()


def _spool_meta(spool: Path, key: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=5)) as db:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else -1
