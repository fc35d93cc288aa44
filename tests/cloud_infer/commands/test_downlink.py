"""The downlink over a real gRPC server and a real store: delivery, results, restarts, deadlines, cancel.

Every test drives a real grpc.aio client as the agent: it reads the commands the cloud sends and
reports results as CommandStarted/CommandResult events in its acked event stream.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from cloud_infer.commands import CommandSettings, CommandStatus, Issuer
from cloud_infer.commands.service import SECRET_LOST
from cloud_infer.config import ServerSettings
from cloud_infer.errors import InvalidMessageError, NotFoundError, PermissionDeniedError, RateLimitedError
from cloud_infer.privacy.protocol import PrivacySettings
from cloud_infer.privacy.service import PrivacyService
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.event_log import EventLog
from tests.support.cloud import AgentStream, FaultyStore, batch, hello, ingest_token, wait_for
from tests.support.command_stack import CommandStack, start_stack
from tests.support.commands_agent import TestAgent, every_object

SYSTEM = Issuer.system("tests")
KEYS = pb.WorkflowStep(press_keys=pb.PressKeys(keys="ctrl+s"))
KILL = pb.Remediation(kill_process=pb.KillProcess(pid=4242, expect_executable="mousepad"))


async def known(agent: TestAgent) -> None:
    """Let the session's agent connect once, so the cloud knows the session and its owner."""
    await agent.connect()
    await agent.close()


async def has_status(stack: CommandStack, agent: TestAgent, command_id: str, wanted: CommandStatus) -> bool:
    return (await stack.commands.get(agent.ref, command_id, issuer=SYSTEM)).status is wanted


async def test_a_command_reaches_the_connected_agent_and_its_result_completes_it(
    stack: CommandStack, agent: TestAgent
) -> None:
    await agent.connect()
    try:
        with stack.commands.subscribe(agent.user) as changes:
            issued = await stack.commands.issue(
                agent.ref, KEYS, issuer=Issuer.user(agent.user), deadline_s=60, idempotency_key="save-1"
            )
            assert issued.status is CommandStatus.QUEUED
            command = await agent.next_command()
            assert command.command_id == issued.command_id
            assert command.workflow_step.press_keys.keys == "ctrl+s"
            assert command.issuer == pb.Issuer(kind=pb.Issuer.KIND_USER, id=agent.user)
            assert command.idempotency_key == "save-1"
            assert command.deadline_unix_nano - command.issued_unix_nano == 60 * 1_000_000_000

            assert await agent.started(command.command_id) == 1
            await wait_for(lambda: has_status(stack, agent, command.command_id, CommandStatus.RUNNING))
            assert await agent.result(command.command_id, observed={"focused_title": "notes.txt"}) == 2
            done = await stack.commands.wait(agent.ref, command.command_id, 10, issuer=SYSTEM)
            assert done.status is CommandStatus.SUCCEEDED
            assert done.decided_by == "agent"
            assert done.observed == {"focused_title": "notes.txt"}
            assert done.deliveries == 1
            assert 0 < done.received_ns < done.started_ns < done.finished_ns
            seen = [(await asyncio.wait_for(changes.get(), 5)).status for _ in range(4)]
            assert seen == [
                CommandStatus.QUEUED,
                CommandStatus.DELIVERED,
                CommandStatus.RUNNING,
                CommandStatus.SUCCEEDED,
            ]
        # Completed: a reconnecting agent is not sent it again.
        await agent.close()
        await agent.connect()
        await agent.no_command_within(0.5)
    finally:
        await agent.close()


async def test_pending_commands_are_sent_again_after_every_reconnect_until_their_result_is_acked(
    stack: CommandStack, agent: TestAgent
) -> None:
    await known(agent)
    first = await stack.commands.issue(agent.ref, KEYS, issuer=SYSTEM)
    second = await stack.commands.issue(agent.ref, KILL, issuer=SYSTEM)
    try:
        await agent.connect()
        got = [await agent.next_command(), await agent.next_command()]
        assert [c.command_id for c in got] == [first.command_id, second.command_id]  # issue order
        await agent.close()  # the link drops before any result

        await agent.connect()
        again = [await agent.next_command(), await agent.next_command()]
        assert [c.command_id for c in again] == [first.command_id, second.command_id]
        await agent.result(first.command_id)
        await stack.commands.wait(agent.ref, first.command_id, 10, issuer=SYSTEM)
        await agent.close()

        await agent.connect()
        assert (await agent.next_command()).command_id == second.command_id
        await agent.no_command_within(0.5)
        record = await stack.commands.get(agent.ref, second.command_id, issuer=SYSTEM)
        assert (record.status, record.deliveries) == (CommandStatus.DELIVERED, 3)
    finally:
        await agent.close()


async def test_commands_survive_a_server_restart(
    settings: ServerSettings, store: FaultyStore, user: str, session: str
) -> None:
    stack = await start_stack(settings, store)
    agent = TestAgent(stack.target, user, session)
    await known(agent)
    queued = await stack.commands.issue(agent.ref, KEYS, issuer=SYSTEM, deadline_s=120)
    await stack.stop()  # everything in memory is gone with it

    restarted = await start_stack(settings, store)
    agent.target = restarted.target
    try:
        await agent.connect()
        command = await agent.next_command()
        assert command.command_id == queued.command_id
        await agent.result(command.command_id, pb.CommandResult.STATUS_FAILED, error="no window")
        done = await restarted.commands.wait(agent.ref, command.command_id, 10, issuer=SYSTEM)
        assert (done.status, done.error) == (CommandStatus.FAILED, "no window")
    finally:
        await agent.close()
        await restarted.stop()


async def test_a_command_past_its_deadline_is_never_sent_and_is_reported_expired(
    stack: CommandStack, agent: TestAgent
) -> None:
    await known(agent)
    late = await stack.commands.issue(agent.ref, KEYS, issuer=SYSTEM, deadline_s=0.2)
    with stack.commands.subscribe(agent.user, agent.session) as changes:
        expired = await stack.commands.wait(agent.ref, late.command_id, 5, issuer=SYSTEM)
        assert (expired.status, expired.decided_by, expired.deliveries) == (CommandStatus.EXPIRED, "cloud", 0)
        assert (await asyncio.wait_for(changes.get(), 1)).status is CommandStatus.EXPIRED
    on_time = await stack.commands.issue(agent.ref, KILL, issuer=SYSTEM)
    try:
        await agent.connect()
        assert (await agent.next_command()).command_id == on_time.command_id
        await agent.no_command_within(0.3)
    finally:
        await agent.close()


async def test_idempotency_key_gives_the_same_command_once(stack: CommandStack, agent: TestAgent) -> None:
    await known(agent)
    first = await stack.commands.issue(agent.ref, KEYS, issuer=SYSTEM, idempotency_key="nightly-2026-12-02")
    again = await stack.commands.issue(agent.ref, KEYS, issuer=SYSTEM, idempotency_key="nightly-2026-12-02")
    other = await stack.commands.issue(agent.ref, KEYS, issuer=SYSTEM, idempotency_key="nightly-2026-12-03")
    assert again.command_id == first.command_id != other.command_id
    try:
        await agent.connect()
        sent = [(await agent.next_command()).command_id, (await agent.next_command()).command_id]
        assert sent == [first.command_id, other.command_id]
        await agent.no_command_within(0.3)
    finally:
        await agent.close()


async def test_cancel_drops_a_queued_command_and_sends_a_cancel_for_a_delivered_one(
    stack: CommandStack, agent: TestAgent
) -> None:
    await known(agent)
    queued = await stack.commands.issue(agent.ref, KEYS, issuer=SYSTEM)
    dropped = await stack.commands.cancel(agent.ref, queued.command_id, issuer=Issuer.user(agent.user))
    assert (dropped.status, dropped.decided_by) == (CommandStatus.CANCELLED, "cloud")
    running = await stack.commands.issue(agent.ref, KILL, issuer=SYSTEM)
    try:
        await agent.connect()
        assert (await agent.next_command()).command_id == running.command_id  # the cancelled one never
        await agent.started(running.command_id)
        cancelling = await stack.commands.cancel(agent.ref, running.command_id, issuer=SYSTEM)
        assert cancelling.cancel_requested and cancelling.status.pending
        cancel = await agent.next_command()
        assert cancel.cancel.command_id == running.command_id
        await agent.result(running.command_id, pb.CommandResult.STATUS_CANCELLED)
        await agent.result(cancel.command_id)
        done = await stack.commands.wait(agent.ref, running.command_id, 10, issuer=SYSTEM)
        assert (done.status, done.decided_by) == (CommandStatus.CANCELLED, "agent")
        cancel_record = await stack.commands.wait(agent.ref, cancel.command_id, 10, issuer=SYSTEM)
        assert (cancel_record.kind, cancel_record.cancels) == ("cancel", running.command_id)
        with pytest.raises(InvalidMessageError):
            await stack.commands.issue(agent.ref, pb.WorkflowStep(), issuer=SYSTEM)  # no action
    finally:
        await agent.close()


async def test_who_may_command_whom_is_enforced_by_the_python_api(
    stack: CommandStack, agent: TestAgent
) -> None:
    await known(agent)
    mallory = Issuer.user("mallory@example.com")
    with pytest.raises(PermissionDeniedError):
        await stack.commands.issue(agent.ref, KEYS, issuer=mallory)
    admin = Issuer.admin("ops-1")
    with pytest.raises(PermissionDeniedError):
        await stack.commands.issue(agent.ref, KEYS, issuer=admin)
    fix = await stack.commands.issue(agent.ref, KILL, issuer=admin)
    mine = await stack.commands.issue(agent.ref, KEYS, issuer=Issuer.user(agent.user))
    with pytest.raises(PermissionDeniedError):
        await stack.commands.get(agent.ref, mine.command_id, issuer=admin)  # a workflow step is the user's
    with pytest.raises(PermissionDeniedError):
        await stack.commands.cancel(agent.ref, fix.command_id, issuer=mallory)
    assert (await stack.commands.get(agent.ref, fix.command_id, issuer=admin)).action == (
        "remediation.kill_process"
    )
    with pytest.raises(NotFoundError):  # a session its owner's agent never opened is unknown
        await stack.commands.issue(
            type(agent.ref)(agent.user, "desk-never-seen"), KEYS, issuer=Issuer.user(agent.user)
        )


async def test_too_many_pending_commands_are_refused(
    settings: ServerSettings, store: FaultyStore, user: str, session: str
) -> None:
    stack = await start_stack(settings, store, CommandSettings(max_pending=2))
    agent = TestAgent(stack.target, user, session)
    try:
        await known(agent)
        for _ in range(2):
            await stack.commands.issue(agent.ref, KEYS, issuer=SYSTEM)
        with pytest.raises(RateLimitedError):
            await stack.commands.issue(agent.ref, KEYS, issuer=SYSTEM)
    finally:
        await stack.stop()


async def test_a_secret_reaches_the_agent_and_never_the_store(
    settings: ServerSettings, store: FaultyStore, user: str, session: str
) -> None:
    secret = "hunter2-Zq8#canary"
    typing = pb.WorkflowStep(
        type_text=pb.TypeText(element=pb.ElementRef(role="password text"), use_secret=True, replace=True)
    )
    stack = await start_stack(settings, store)
    agent = TestAgent(stack.target, user, session)
    await known(agent)
    unanswered = await stack.commands.issue(agent.ref, typing, issuer=Issuer.user(user), secret=secret)
    await agent.connect()
    try:
        delivered = await stack.commands.issue(agent.ref, typing, issuer=Issuer.user(user), secret=secret)
        got = [await agent.next_command(), await agent.next_command()]
        assert [(c.command_id, c.secret) for c in got] == [
            (unanswered.command_id, secret),
            (delivered.command_id, secret),
        ]
        await agent.result(delivered.command_id)
        await stack.commands.wait(agent.ref, delivered.command_id, 10, issuer=SYSTEM)
    finally:
        await agent.close()
    with pytest.raises(InvalidMessageError):
        await stack.commands.issue(agent.ref, typing, issuer=Issuer.user(user))  # use_secret, none given
    # One more, never delivered: the restart below loses its secret.
    queued = await stack.commands.issue(agent.ref, typing, issuer=Issuer.user(user), secret=secret)
    await stack.stop()

    restarted = await start_stack(settings, store)
    agent.target = restarted.target
    try:
        failed = await restarted.commands.get(agent.ref, queued.command_id, issuer=SYSTEM)
        assert (failed.status, failed.error) == (CommandStatus.FAILED, SECRET_LOST)
        await agent.connect()
        resent = await agent.next_command()  # delivered before the restart: sent again, without it
        assert (resent.command_id, resent.secret) == (unanswered.command_id, "")
        await agent.no_command_within(0.3)
    finally:
        await agent.close()
        await restarted.stop()
    objects = await every_object(store, user)
    assert any(key.endswith("outbox.json") for key in objects)
    for key, data in objects.items():
        assert secret.encode() not in data, key


async def test_command_events_are_validated_and_bounded(stack: CommandStack, agent: TestAgent) -> None:
    bad = [
        pb.CommandResult(command_id="c1"),  # no status
        pb.CommandResult(command_id="", status=pb.CommandResult.STATUS_SUCCEEDED),
        pb.CommandResult(command_id="../x", status=pb.CommandResult.STATUS_SUCCEEDED),
        pb.CommandResult(
            command_id="c1",
            status=pb.CommandResult.STATUS_SUCCEEDED,
            observed={f"k{i}": "v" for i in range(33)},
        ),
        pb.CommandResult(command_id="c1", status=pb.CommandResult.STATUS_FAILED, error="e" * 5000),
    ]
    for result in bad:
        stream = AgentStream(stack.target, ingest_token(agent.user, agent.session))
        event = pb.Event(seq=1, time_unix_nano=agent.event().time_unix_nano, command_result=result)
        code, details = await stream.status(hello(agent.user, agent.session), batch([event]))
        await stream.close()
        assert code is grpc.StatusCode.INVALID_ARGUMENT, (result, details)
        assert "command_result" in details
    # A result for a command the cloud does not know is stored and ignored.
    await agent.connect()
    try:
        assert await agent.result("0123456789abcdef") > 0
    finally:
        await agent.close()


async def test_a_paused_user_still_gets_results_without_what_the_agent_observed(
    settings: ServerSettings, store: FaultyStore, user: str, session: str
) -> None:
    privacy = PrivacyService(store)
    await privacy.put(user, PrivacySettings(paused=True))
    stack = await start_stack(settings, store, privacy=privacy)
    agent = TestAgent(stack.target, user, session)
    try:
        await agent.connect()
        issued = await stack.commands.issue(agent.ref, KEYS, issuer=SYSTEM)
        command = await agent.next_command()
        await agent.result(command.command_id, observed={"value": "text on screen"})
        done = await stack.commands.wait(agent.ref, issued.command_id, 10, issuer=SYSTEM)
        assert (done.status, done.observed) == (CommandStatus.SUCCEEDED, {})
        stored = await EventLog(store).read(user, 0, 2**62)
        assert [e.event.command_result.command_id for e in stored] == [command.command_id]
        assert not stored[0].event.command_result.observed
    finally:
        await agent.close()
        await stack.stop()
