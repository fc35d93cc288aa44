"""Commands through the real agent and its gRPC stream, from a minimal real cloud that speaks the contract:
the allow-list, at-most-once over repeated deliveries and reconnects, deadlines, and an agent killed
mid-command."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.agent import Agent
from session_agent.config import ENV_PREFIX, AgentSettings
from shadowdesk_common.desktop import VirtualDesktop
from tests.support.command_cloud import CommandCloud, R, command
from tests.support.polling import async_wait_until

REPO_ROOT = Path(__file__).resolve().parents[3]
AGENT_MAIN = (
    "import asyncio; from session_agent.agent import run_agent; "
    "from session_agent.config import AgentSettings; asyncio.run(run_agent(AgentSettings()))"
)
SNAPSHOT = {"remediation": pb.Remediation(diagnostic_snapshot=pb.DiagnosticSnapshot())}
KILL = {
    "remediation": pb.Remediation(kill_process=pb.KillProcess(pid=os.getpid(), expect_executable="python"))
}


class RunningAgent:
    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(Agent(settings).run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 15)


@pytest.fixture
async def start_agent() -> AsyncIterator[Callable[[AgentSettings], RunningAgent]]:
    agents: list[RunningAgent] = []

    def start(settings: AgentSettings) -> RunningAgent:
        agents.append(RunningAgent(settings))
        return agents[-1]

    yield start
    for agent in agents:
        if not agent.task.done():
            await agent.close()


async def test_the_agent_answers_commands_refuses_what_is_not_allowed_and_runs_each_once(
    command_cloud: tuple[CommandCloud, str],
    make_settings: Callable[..., AgentSettings],
    start_agent: Callable[[AgentSettings], RunningAgent],
) -> None:
    cloud, target = command_cloud
    settings = make_settings(server=target)
    agent = start_agent(settings)
    await async_wait_until(lambda: bool(cloud.hellos), what="the agent's Hello")
    capabilities = set(cloud.hellos[0].capabilities)
    assert {"exec:diagnostic_snapshot", "exec:notice", "exec:cancel"} <= capabilities
    assert "exec:kill_process" not in capabilities, "off by default"
    assert "exec:type_text" not in capabilities, "no X display: no workflow actions"

    cloud.send(command("snapshot", **SNAPSHOT))
    cloud.send(command("snapshot", **SNAPSHOT), again=True)  # delivered twice on the same stream
    cloud.send(command("kill", **KILL))  # the cloud sends it anyway: the agent refuses
    cloud.send(command("late", deadline_s=0.001, **SNAPSHOT))
    snapshot, kill, late = [await cloud.result(c) for c in ("snapshot", "kill", "late")]
    assert snapshot.status == R.STATUS_SUCCEEDED and int(snapshot.observed["memory_total_bytes"]) > 0
    assert kill.status == R.STATUS_REFUSED and "not allowed" in kill.error
    assert late.status == R.STATUS_EXPIRED and not cloud.started("late")

    # A cloud that lost the result delivers again, also after a reconnect: it is not run again.
    await agent.close()
    agent = start_agent(settings)
    cloud.send(command("snapshot", **SNAPSHOT), again=True)
    cloud.outbox["snapshot"] = command("snapshot", **SNAPSHOT)  # in the outbox for the next stream too
    await async_wait_until(lambda: len(cloud.hellos) == 2, what="the second stream")
    cloud.send(command("after", **SNAPSHOT))
    await cloud.result("after")
    assert len(cloud.started("snapshot")) == 1 and len(cloud.results("snapshot")) == 1
    assert not cloud.started("kill")


def agent_env(settings: AgentSettings, display: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update(
        {
            "DISPLAY": display,
            "PYTHONPATH": str(REPO_ROOT),
            ENV_PREFIX + "SERVER": settings.server,
            ENV_PREFIX + "TOKEN": settings.token.get_secret_value(),
            ENV_PREFIX + "USER_ID": settings.user_id,
            ENV_PREFIX + "SESSION_ID": settings.session_id,
            ENV_PREFIX + "SPOOL_PATH": str(settings.spool_path),
            ENV_PREFIX + "SENSORS": "",
            ENV_PREFIX + "BACKOFF_MAX_S": "1",
        }
    )
    return env


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.e2e
@pytest.mark.slow
async def test_an_agent_killed_mid_command_reports_it_interrupted_and_does_not_run_it_again(
    command_cloud: tuple[CommandCloud, str],
    make_settings: Callable[..., AgentSettings],
    desktop: VirtualDesktop,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    cloud, target = command_cloud
    env = agent_env(make_settings(server=target), desktop.display)
    first = subprocess.Popen([sys.executable, "-c", AGENT_MAIN], env=env)
    processes.append(first)
    never = pb.WaitFor(window_focused=pb.WindowRef(title_contains="never appears"), timeout_ms=120_000)
    cloud.send(command("long-wait", workflow_step=pb.WorkflowStep(wait_for=never)))
    await async_wait_until(
        lambda: bool(cloud.started("long-wait")), timeout_s=30, what="the command to start"
    )
    first.kill()
    assert await asyncio.to_thread(first.wait, 10) == -signal.SIGKILL
    assert not cloud.results("long-wait") and "long-wait" in cloud.outbox

    second = subprocess.Popen([sys.executable, "-c", AGENT_MAIN], env=env)
    processes.append(second)
    started = time.monotonic()
    result = await cloud.result("long-wait", timeout_s=30)
    assert result.status == R.STATUS_INTERRUPTED
    assert time.monotonic() - started < 30, "answered at the restart, not after the wait's 120 s"
    assert len(cloud.hellos) == 2 and "long-wait" not in cloud.outbox
    # The command was delivered again on the new stream; it was neither started nor answered twice.
    cloud.send(command("after", **SNAPSHOT))
    await cloud.result("after")
    assert len(cloud.started("long-wait")) == 1 and len(cloud.results("long-wait")) == 1
    second.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(second.wait, 15) == 0


@pytest.mark.e2e
async def test_cancel_stops_a_running_wait_through_the_stream(
    command_cloud: tuple[CommandCloud, str],
    make_settings: Callable[..., AgentSettings],
    desktop: VirtualDesktop,
    start_agent: Callable[[AgentSettings], RunningAgent],
) -> None:
    cloud, target = command_cloud
    start_agent(make_settings(server=target, display=desktop.display))
    never = pb.WaitFor(window_focused=pb.WindowRef(title_contains="never appears"), timeout_ms=60_000)
    cloud.send(command("wait", workflow_step=pb.WorkflowStep(wait_for=never)))
    await async_wait_until(lambda: bool(cloud.started("wait")), what="the wait to start")
    cloud.send(command("cancel", cancel=pb.CancelCommand(command_id="wait")))
    assert (await cloud.result("wait", timeout_s=5)).status == R.STATUS_CANCELLED
    assert (await cloud.result("cancel")).observed["target_state"] == "running"
