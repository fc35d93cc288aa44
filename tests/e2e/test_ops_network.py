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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_infer.auth import issue_token
from harness.processes import TOKEN_SECRET, ServerProcess, ShadowdeskProcess, agent_env, wait_until
from harness.toxiproxy import ToxiproxyServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USER, SESSION = "ines-ops@example.com", "ines-desk-2"
ADMIN = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, 'ops-1', ['read', 'admin'])}"}


@dataclass
class Link:
    """The real agent streaming to the real server through Toxiproxy's proxy ``cloud``."""

    toxiproxy: ToxiproxyServer
    api: httpx.Client
    spool: Path

    def degraded(self) -> list[dict[str, Any]]:
        reply = self.api.get("/v1/ops/incidents", params={"state": "all"}, headers=ADMIN)
        assert reply.status_code == 200, reply.text
        return [i for i in reply.json()["incidents"] if i["rule"] == "link_degraded"]


@contextlib.contextmanager
def linked_agent(tmp_path: Path, server_env: dict[str, str], agent_extra: dict[str, str]) -> Iterator[Link]:
    """Server, Toxiproxy and agent started, the agent streaming and its samples in; on a failure the
    agent's and the server's logs are added to the assertion."""
    store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": str(tmp_path / "store")}
    server = ServerProcess(
        {**store, **server_env}, tmp_path / "server.log", recall_enabled="false", llm_backend="none"
    )
    server.start()
    spool = tmp_path / "spool.sqlite3"
    with (
        ToxiproxyServer(tmp_path / "toxiproxy.log") as toxiproxy,
        httpx.Client(base_url=server.http_url, timeout=10) as api,
    ):
        listen = toxiproxy.proxy("cloud", server.grpc_address)
        token = issue_token(TOKEN_SECRET, USER, "ingest", session_id=SESSION)
        env = agent_env(server, token, USER, SESSION, spool, sensors="system_metrics")
        env |= {"SHADOWDESK_AGENT_SERVER": listen, **agent_extra}
        agent = ShadowdeskProcess("agent", env, tmp_path / "agent.log")
        agent.start()
        try:
            wait_until(lambda: "streaming to" in agent.log(), 60, "the agent's stream")
            wait_until(lambda: api.get("/v1/ops/sessions", headers=ADMIN).json()["sessions"], 30, "samples")
            yield Link(toxiproxy, api, spool)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\nagent: {agent.log()[-4000:]}\nserver: {server.log()[-4000:]}"
            ) from exc
        finally:
            agent.terminate()
            server.terminate()


def test_a_delayed_link_is_a_link_degraded_incident_that_resolves_when_the_delay_goes(tmp_path: Path) -> None:
    # The agent's deadlines are longer than the delay: slow is not down.
    with linked_agent(
        tmp_path, {"SHADOWDESK_DIAGNOSTICS_CLEAR_AFTER_S": "2"}, {"SHADOWDESK_AGENT_ACK_TIMEOUT_S": "30"}
    ) as link:
        assert link.degraded() == []
        link.toxiproxy.add_latency("cloud", 1500)  # each way: an ack comes 3 s after its batch
        wait_until(link.degraded, 90, "the link_degraded incident")
        (incident,) = link.degraded()
        assert incident["resolved_ns"] is None and incident["severity"] == "warning"
        assert incident["sessions"][0]["peak"] > 2000, incident["sessions"]
        link.toxiproxy.remove_latency("cloud")
        wait_until(lambda: link.degraded()[0]["resolved_ns"] is not None, 90, "the resolution")


def test_a_loss_burst_is_a_link_degraded_incident_and_nothing_is_lost(tmp_path: Path) -> None:
    with linked_agent(tmp_path, {}, {}) as link:  # default deadlines: the agent reconnects on its own
        link.toxiproxy.drop_everything("cloud")
        # Nothing gets through: acks stop, samples wait in the spool. Routine samples go out every
        # 10 s, so the link reads slow from 0-10 s into the burst; 30 s is sure to hold it 10 s.
        time.sleep(30)
        assert link.degraded() == []  # the cloud cannot hear about a link it does not hear from
        link.toxiproxy.restore("cloud")
        wait_until(link.degraded, 90, "the link_degraded incident, once the samples arrive")
        (incident,) = link.degraded()
        assert incident["sessions"][0]["peak"] > 10_000, incident["sessions"]

        # Every event of the burst was resent and stored: the cloud acked all the agent wrote.
        def all_acked() -> bool:
            return _spool_meta(link.spool, "acked_seq") == _spool_meta(link.spool, "last_seq")

        wait_until(all_acked, 60, "acks")


def _spool_meta(spool: Path, key: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=5)) as db:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else -1
