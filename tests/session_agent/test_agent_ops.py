"""The agent's ops sensing through a real ingest server: link RTT on its own stream, the desktop probe,
top processes, where it runs, and its logon phases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.agent import Agent
from session_agent.config import AgentSettings
from shadowdesk_common.desktop import VirtualDesktop
from tests.support.agent_cloud import CloudServer, logged


async def test_the_agents_samples_carry_its_link_rtt_probe_and_top_processes_and_it_says_where_it_runs(
    desktop: VirtualDesktop, cloud: CloudServer, make_settings: Callable[..., AgentSettings]
) -> None:
    await asyncio.to_thread(desktop.launch_xterm, "ops-agent")
    settings = make_settings(
        server=cloud.target,
        display=desktop.display,
        sensors="apps,system_metrics,desktop_health",
        metrics_interval_s=0.3,
        metrics_send_interval_s=0.6,
        top_interval_s=0.3,
        image="office-2026.11",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(Agent(settings).run(stop))

    async def events() -> list[pb.Event]:
        return [e.event for e in await logged(cloud, settings.user_id)]

    def samples(found: list[pb.Event]) -> list[pb.SystemMetrics]:
        return [e.metrics for e in found if e.WhichOneof("kind") == "metrics"]

    def ready(found: list[pb.Event]) -> bool:
        measured = samples(found)
        phases = {e.logon.phase for e in found if e.WhichOneof("kind") == "logon"}
        return (
            any(m.cloud_rtt_ms > 0 for m in measured)
            and any(m.desktop_probe_ms > 0 for m in measured)
            and pb.LogonPhase.PHASE_AGENT_CONNECTED in phases
        )

    try:
        deadline = time.monotonic() + 30
        while not ready(found := await events()):
            assert time.monotonic() < deadline, samples(found)[-3:]
            assert not task.done(), task
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    measured = samples(found)
    # The batch-to-Ack time of a local server with a local store: more than nothing, well under 2 s.
    assert all(0 <= m.cloud_rtt_ms < 2000 for m in measured)
    assert all(0 <= m.desktop_probe_ms < 500 for m in measured)
    assert any(m.top_memory for m in measured) and all(len(m.top_memory) <= 3 for m in measured)
    assert all(m.memory_total_bytes and m.disk_free_bytes and m.load_5m >= 0 for m in measured)
    (info,) = [e.session_info for e in found if e.WhichOneof("kind") == "session_info"]
    assert info.image == "office-2026.11" and info.hostname and info.agent_version
    phases = [e.logon for e in found if e.WhichOneof("kind") == "logon"]
    assert len({p.phase for p in phases}) == len(phases) == 3  # each once: desktop up, connected, window
    assert all(p.since_logon_ms > 0 for p in phases)
