"""The executor's rules (at most once, deadlines, allow-list, cancel, interrupted, budgets, secrets) over a
real spool, with small handlers standing in for desktop actions."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.config import AgentSettings
from session_agent.errors import ActionFailedError, ActionRefusedError
from session_agent.executor import ActionContext, Executor, Outcome
from session_agent.executor.protocol import started_event
from session_agent.spool import Spool
from tests.support.command_cloud import R, command, result_in, spooled, wait_result
from tests.support.polling import async_wait_until

SNAPSHOT = {"remediation": pb.Remediation(diagnostic_snapshot=pb.DiagnosticSnapshot())}


def wait_step(timeout_ms: int = 60_000) -> dict[str, Any]:
    return {
        "workflow_step": pb.WorkflowStep(
            wait_for=pb.WaitFor(window_focused=pb.WindowRef(title_contains="never"), timeout_ms=timeout_ms)
        )
    }


class Recorder:
    """Handlers that record their calls; ``wait_for`` runs until stopped or released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()
        self.running = threading.Event()

    def snapshot(self, command: pb.Command, context: ActionContext) -> Outcome:
        self.calls.append(command.command_id)
        return Outcome({"done": "yes"})

    def wait(self, command: pb.Command, context: ActionContext) -> Outcome:
        self.calls.append(command.command_id)
        self.running.set()
        while not self.release.is_set():
            context.sleep(0.01)
        return Outcome()

    def handlers(self, **extra: Callable[[pb.Command, ActionContext], Outcome]) -> dict[str, Any]:
        return {"diagnostic_snapshot": self.snapshot, "wait_for": self.wait, **extra}


@pytest.fixture
def start_executor(
    make_settings: Callable[..., AgentSettings], open_spool: Callable[[], Spool]
) -> Iterator[Callable[..., tuple[Executor, Spool]]]:
    executors: list[Executor] = []

    def start(handlers: dict[str, Any], **overrides: Any) -> tuple[Executor, Spool]:
        settings = make_settings(display=":99", **overrides)
        spool = open_spool()
        executor = Executor(settings, spool, handlers)
        executor.start()
        executors.append(executor)
        return executor, spool

    yield start
    for executor in executors:
        executor.stop()


async def test_a_command_runs_once_however_often_it_is_delivered(
    start_executor: Callable[..., tuple[Executor, Spool]],
) -> None:
    recorder = Recorder()
    executor, spool = start_executor(recorder.handlers())
    snapshot = command("c-1", **SNAPSHOT)
    await asyncio.gather(*(executor.submit(snapshot) for _ in range(3)))
    result = await wait_result(spool, "c-1")
    await executor.submit(snapshot)  # after it finished: the spool remembers it
    await asyncio.sleep(0.1)
    assert recorder.calls == ["c-1"]
    assert result.status == R.STATUS_SUCCEEDED and dict(result.observed) == {"done": "yes"}
    assert result.received_unix_nano <= result.started_unix_nano <= result.finished_unix_nano
    started = spooled(spool, "command_started")
    assert [e.command_started.command_id for e in started] == ["c-1"]
    assert started[0].seq < next(e.seq for e in spooled(spool, "command_result")), "started before the result"
    assert executor.duplicates == 3


async def test_expired_and_not_allowed_commands_are_answered_without_running(
    start_executor: Callable[..., tuple[Executor, Spool]],
) -> None:
    recorder = Recorder()
    executor, spool = start_executor(recorder.handlers(), allowed_actions="wait_for")
    late = command("late", deadline_s=0, **wait_step())
    late.deadline_unix_nano = time.time_ns() - 1
    await executor.submit(late)
    await executor.submit(command("not-allowed", **SNAPSHOT))
    await executor.submit(command("empty"))  # a kind this agent does not know
    await executor.submit(command("bad id/with slash", **SNAPSHOT))  # its result would block the stream
    expired, refused, unknown = [await wait_result(spool, c) for c in ("late", "not-allowed", "empty")]
    assert expired.status == R.STATUS_EXPIRED and expired.started_unix_nano == 0
    assert refused.status == R.STATUS_REFUSED and "not allowed" in refused.error
    assert unknown.status == R.STATUS_REFUSED
    assert recorder.calls == [] and spooled(spool, "command_started") == []
    assert len(spooled(spool, "command_result")) == 3, "nothing recorded for an id the cloud would refuse"
    assert (
        "exec:wait_for" in executor.capabilities and "exec:diagnostic_snapshot" not in executor.capabilities
    )


async def test_cancel_drops_a_queued_command_and_stops_a_running_one(
    start_executor: Callable[..., tuple[Executor, Spool]],
) -> None:
    recorder = Recorder()
    executor, spool = start_executor(recorder.handlers())
    await executor.submit(command("running", **wait_step()))
    await executor.submit(command("queued", **SNAPSHOT))
    await asyncio.to_thread(recorder.running.wait, 5)
    await executor.submit(command("cancel-1", cancel=pb.CancelCommand(command_id="queued")))
    await executor.submit(command("cancel-2", cancel=pb.CancelCommand(command_id="running")))
    running = await wait_result(spool, "running")
    assert running.status == R.STATUS_CANCELLED and running.started_unix_nano > 0
    queued = await wait_result(spool, "queued")
    assert queued.status == R.STATUS_CANCELLED and queued.started_unix_nano == 0
    states = [dict((await wait_result(spool, c)).observed)["target_state"] for c in ("cancel-1", "cancel-2")]
    assert states == ["queued", "running"]
    assert recorder.calls == ["running"]
    # Cancelling what already finished fails; cancelling what never arrived keeps it from ever running.
    await executor.submit(command("cancel-3", cancel=pb.CancelCommand(command_id="running")))
    assert (await wait_result(spool, "cancel-3")).status == R.STATUS_FAILED
    await executor.submit(command("cancel-4", cancel=pb.CancelCommand(command_id="later")))
    assert (await wait_result(spool, "later")).status == R.STATUS_CANCELLED
    await executor.submit(command("later", **SNAPSHOT))
    await asyncio.sleep(0.1)
    assert recorder.calls == ["running"]


async def test_a_command_started_before_a_crash_is_interrupted_and_never_run_again(
    make_settings: Callable[..., AgentSettings], open_spool: Callable[[], Spool]
) -> None:
    spool = open_spool()
    started_ns = time.time_ns()
    assert spool.begin_command(
        "c-1", received_ns=started_ns - 5, deadline_ns=0, event=started_event("c-1", started_ns)
    )
    spool.close()  # the agent died here, mid-action
    spool = open_spool()
    recorder = Recorder()
    executor = Executor(make_settings(display=":99"), spool, recorder.handlers())
    assert executor.start() == 1
    try:
        await executor.submit(command("c-1", **SNAPSHOT))  # delivered again after the restart
        result = await wait_result(spool, "c-1")
        await asyncio.sleep(0.1)
    finally:
        executor.stop()
    assert result.status == R.STATUS_INTERRUPTED
    assert (result.received_unix_nano, result.started_unix_nano) == (started_ns - 5, started_ns)
    assert recorder.calls == []


async def test_an_action_over_its_budget_fails_and_the_next_command_runs(
    start_executor: Callable[..., tuple[Executor, Spool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("session_agent.executor.service.JOIN_GRACE_S", 0.2)
    hung = threading.Event()

    def hang(command: pb.Command, context: ActionContext) -> Outcome:
        hung.wait(30)  # a blocking call that ignores the budget
        return Outcome()

    recorder = Recorder()
    executor, spool = start_executor(
        recorder.handlers(kill_process=hang),
        allowed_actions="kill_process,diagnostic_snapshot",
        action_timeout_s=0.3,
    )
    kill = {"remediation": pb.Remediation(kill_process=pb.KillProcess(pid=1234, expect_executable="x"))}
    await executor.submit(command("hangs", **kill))
    await executor.submit(command("next", **SNAPSHOT))
    hung_result = await wait_result(spool, "hangs")
    assert hung_result.status == R.STATUS_FAILED and "did not finish" in hung_result.error
    assert (await wait_result(spool, "next")).status == R.STATUS_SUCCEEDED
    hung.set()


async def test_errors_map_to_statuses_and_the_secret_never_reaches_the_spool(
    start_executor: Callable[..., tuple[Executor, Spool]],
) -> None:
    secret = "Zq7-unique-secret!"

    def refuse(command: pb.Command, context: ActionContext) -> Outcome:
        raise ActionRefusedError(f"will not type {context.secret}", observed={"echo": context.secret})

    def fail(command: pb.Command, context: ActionContext) -> Outcome:
        raise ActionFailedError("no such element")

    def crash(command: pb.Command, context: ActionContext) -> Outcome:
        raise ValueError(f"bug near {context.secret}")

    executor, spool = start_executor({"type_text": refuse, "read_element": fail, "press_keys": crash})
    step = pb.WorkflowStep
    await executor.submit(
        command("refused", secret=secret, workflow_step=step(type_text=pb.TypeText(use_secret=True)))
    )
    await executor.submit(command("failed", workflow_step=step(read_element=pb.ReadElement())))
    await executor.submit(
        command("crashed", secret=secret, workflow_step=step(press_keys=pb.PressKeys(keys="a")))
    )
    refused, failed, crashed = [await wait_result(spool, c) for c in ("refused", "failed", "crashed")]
    assert refused.status == R.STATUS_REFUSED and refused.error == "will not type [secret]"
    assert dict(refused.observed) == {"echo": "[secret]"}
    assert (failed.status, failed.error) == (R.STATUS_FAILED, "no such element")
    assert (crashed.status, crashed.error) == (R.STATUS_FAILED, "internal error (ValueError)")
    executor.stop()
    spool.close()
    files = [spool.path, spool.path.with_name(spool.path.name + "-wal")]
    assert not any(secret.encode() in path.read_bytes() for path in files if path.exists())


def test_command_events_are_never_dropped_by_the_spool_bound(open_spool: Callable[[], Spool]) -> None:
    spool = open_spool()
    big = pb.Event(time_unix_nano=1, text=pb.TextSnapshot(text="x" * 1_000_000))
    assert spool.append([big]) == [1]
    assert spool.append([big]) == [], "over the bound: a sensed event is dropped"
    result = pb.Event(
        time_unix_nano=2, command_result=pb.CommandResult(command_id="c", status=R.STATUS_SUCCEEDED)
    )
    assert spool.finish_command("c", deadline_ns=0, event=result) == 2
    assert spool.finish_command("c", deadline_ns=0, event=result) is None, "answered once"
    assert spool.knows_command("c") and not spool.knows_command("d")
    assert spool.depth == 2


async def test_a_full_queue_refuses(start_executor: Callable[..., tuple[Executor, Spool]]) -> None:
    recorder = Recorder()
    executor, spool = start_executor(recorder.handlers(), command_queue_max=1)
    await executor.submit(command("running", **wait_step()))
    await asyncio.to_thread(recorder.running.wait, 5)
    await executor.submit(command("queued", **SNAPSHOT))
    await executor.submit(command("over", **SNAPSHOT))
    over = await wait_result(spool, "over")
    assert over.status == R.STATUS_REFUSED and "queue is full" in over.error
    recorder.release.set()
    await async_wait_until(lambda: result_in(spool, "queued") is not None, what="the queued command")
