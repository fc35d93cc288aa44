"""The runner over the real downlink (gRPC ingest, outbox, committed stream, store), with a scripted desk.

The desk answers each command the cloud sends over a real agent stream the way the session agent's
executor would, from a small model of a form (fields, a drop-down, a submit button that shows a claim
number). Faults are switched on the model: a field that is silently dropped, a target that never
appears, an agent interrupted mid-submit. The real desktop and the real agent are in
tests/e2e/test_workflow_runner.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import websockets
from websockets.typing import Subprotocol

from cloud_infer.app import build_app
from cloud_infer.auth import issue_token
from cloud_infer.config import ServerSettings
from cloud_infer.errors import InvalidMessageError, NotFoundError
from cloud_infer.services import Services
from cloud_infer.workflows.program import Program
from cloud_infer.workflows.runner_config import RunnerSettings
from cloud_infer.workflows.runner_protocol import Decision, RunStatus
from cloud_infer.workflows.runner_service import WorkflowRunService, check_parameters
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.config import StoreSettings
from tests.support.cloud import SECRET, FaultyStore, manage_auth, read_auth, serve_api
from tests.support.command_stack import CommandStack, start_stack
from tests.support.commands_agent import TestAgent
from tests.support.imports import absolute_imports


@pytest.fixture
def store_settings(tmp_path: Path) -> StoreSettings:
    """The local store only: the runner's logic does not depend on the backend (the e2e test uses MinIO)."""
    return StoreSettings(backend="local", local_root=tmp_path / "store", workers=8)


R = pb.CommandResult
FORM = {"app_id": "chromium", "title_contains": "Claim"}
NOTES = {"app_id": "mousepad"}


def field_target(name: str, role: str = "entry") -> dict[str, object]:
    return {"window": FORM, "role": role, "name": name}


PROGRAM = {
    "name": "File a claim",
    "parameters": [
        {"name": "vendor", "type": "text"},
        {"name": "amount", "type": "money"},
        {"name": "category", "type": "choice", "choices": ["Travel", "Meals"]},
    ],
    "steps": [
        {
            "id": "read_notes",
            "action": "read",
            "target": {"window": NOTES, "role": "text"},
            "save_as": "notes",
        },
        {
            "id": "lines",
            "row_pattern": r"^(?P<item>[a-z]+)=(?P<cost>[0-9.]+)$",
            "over": "notes",
            "steps": [
                {
                    "id": "type_line",
                    "action": "type",
                    "target": field_target("Line"),
                    "input": {"item": "cost"},
                    "checks": [
                        {"kind": "field_value", "target": field_target("Line"), "equals": {"item": "cost"}}
                    ],
                }
            ],
        },
        {
            "id": "type_vendor",
            "action": "type",
            "target": field_target("Vendor"),
            "input": {"param": "vendor"},
            "checks": [
                {"kind": "field_value", "target": field_target("Vendor"), "equals": {"param": "vendor"}}
            ],
        },
        {
            "id": "type_amount",
            "action": "type",
            "target": field_target("Amount"),
            "input": {"param": "amount"},
            "retries": 2,
            "checks": [
                {"kind": "field_value", "target": field_target("Amount"), "equals": {"param": "amount"}}
            ],
        },
        {
            "id": "pick_category",
            "action": "select",
            "target": field_target("Category", "combo box"),
            "input": {"param": "category"},
            "checks": [
                {
                    "kind": "field_value",
                    "target": field_target("Category", "combo box"),
                    "equals": {"param": "category"},
                }
            ],
        },
        {
            "id": "submit",
            "action": "click",
            "target": field_target("Submit", "push button"),
            "sensitive": True,
            "checks": [
                {"kind": "text_in_window", "window": FORM, "pattern": "CLM-[0-9]+", "save_as": "claim"}
            ],
        },
    ],
    "final_checks": [{"kind": "text_in_window", "window": FORM, "pattern": "CLM-[0-9]+"}],
}


@dataclass
class Desk:
    """A claim form as the agent would see it, answering commands like the executor does."""

    agent: TestAgent
    notes: str = "taxi=12.50\nnot a line\nhotel=80.00\n"
    fields: dict[str, str] = field(default_factory=dict)
    submissions: int = 0
    filed: dict[str, str] = field(default_factory=dict)  # what the submit stored, shown after it
    drop: set[str] = field(default_factory=set)  # fields that silently lose what is typed
    lose_on_submit: set[str] = field(default_factory=set)  # fields the submit silently stores empty
    missing: set[str] = field(default_factory=set)  # elements that never appear
    interrupt: set[str] = field(default_factory=set)  # clicks the agent is killed in the middle of
    hold: set[str] = field(default_factory=set)  # clicks whose result is held back (until released)
    held: list[pb.Command] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    seen: list[pb.Command] = field(default_factory=list)

    def page_text(self) -> str:
        """The form, or the confirmation: the claim number and what was stored (money without its
        thousands separators, as portals store it)."""
        if not self.submissions:
            return "New claim"
        stored = "\n".join(f"{name}: {value}" for name, value in self.filed.items())
        return f"Claim filed: CLM-{1000 + self.submissions}\n{stored}"

    def answer(self, command: pb.Command) -> tuple[pb.CommandResult.Status.ValueType, dict[str, str], str]:
        step = command.workflow_step
        action = step.WhichOneof("action")
        ok = R.STATUS_SUCCEEDED
        if action == "wait_for":
            if step.wait_for.HasField("element_exists"):
                name = step.wait_for.element_exists.name
                if name in self.missing:
                    return R.STATUS_FAILED, {"met": "false"}, "element_exists not met"
                return ok, {"met": "true", "found_by": "role+name", "name": name}, ""
            if step.wait_for.HasField("text_in_window"):
                find = step.wait_for.text_in_window
                text = self.page_text()
                found = re.search(find.pattern, text) if find.pattern else None
                if found is not None:  # as the agent: the pattern's first group, or its whole match
                    matched = next((g for g in found.groups() if g is not None), found[0])
                    return ok, {"met": "true", "found": "true", "text": text, "match": matched}, ""
                if not find.pattern and find.text and find.text in text:
                    return ok, {"met": "true", "found": "true", "text": text}, ""
                return R.STATUS_FAILED, {"met": "false"}, "text_in_window not met"
            return ok, {"met": "true"}, ""
        if action == "read_element":
            name = step.read_element.element.name
            if step.read_element.element.window.app_id == "mousepad":
                return ok, {"value": self.notes}, ""
            return ok, {"value": self.fields.get(name, "")}, ""
        if action == "type_text":
            name = step.type_text.element.name
            self.fields[name] = "" if name in self.drop else step.type_text.text
            return ok, {"method": "keyboard"}, ""
        if action == "select_option":
            self.fields[step.select_option.element.name] = step.select_option.option
            return ok, {}, ""
        if action == "click_element":
            if step.click_element.element.name == "Submit":
                self.submissions += 1
                self.filed = {
                    name: "" if name in self.lose_on_submit else value.replace(",", "")
                    for name, value in self.fields.items()
                }
            if step.click_element.element.name in self.interrupt:
                return R.STATUS_INTERRUPTED, {}, "the agent restarted while acting"
            return ok, {"method": "action:press"}, ""
        return ok, {}, ""

    async def serve(self) -> None:
        handled = 0
        while True:
            if handled == len(self.agent.commands):
                await self.agent.next_command(timeout_s=3600)  # kept in agent.commands, as are those
                continue  # that arrive while a result waits for its ack
            command = self.agent.commands[handled]
            handled += 1
            if command.HasField("cancel") or any(c.command_id == command.command_id for c in self.seen):
                continue  # at most once, as the executor keeps it
            self.seen.append(command)
            step = command.workflow_step
            if step.WhichOneof("action") == "click_element" and step.click_element.element.name in self.hold:
                self.held.append(command)
                await self.released.wait()  # the agent is busy with it until the test says so
            status, observed, error = self.answer(command)
            await self.agent.result(command.command_id, status, observed, error)

    def actions(self, action: str) -> list[pb.Command]:
        return [c for c in self.seen if c.workflow_step.WhichOneof("action") == action]


@dataclass
class Rig:
    stack: CommandStack
    store: FaultyStore
    agent: TestAgent
    desk: Desk
    runner: WorkflowRunService
    user: str
    session: str
    serving: asyncio.Task[None]

    async def restart_runner(self) -> None:
        """What a server restart does to runs: the old service stops, a new one resumes from the store."""
        await self.runner.close()
        self.runner = WorkflowRunService(self.store, self.stack.commands, self.runner.settings)
        self.runner.start()


RUNNER = RunnerSettings(frames="off", backoff_base_s=0.01, backoff_max_s=0.05, command_margin_s=5)


@pytest.fixture
async def rig(settings: ServerSettings, store: FaultyStore, user: str, session: str) -> AsyncIterator[Rig]:
    stack = await start_stack(settings, store)
    agent = TestAgent(stack.target, user, session)
    await agent.connect()
    desk = Desk(agent)
    serving = asyncio.create_task(desk.serve())
    runner = WorkflowRunService(store, stack.commands, RUNNER)
    runner.start()
    rig = Rig(stack, store, agent, desk, runner, user, session, serving)
    yield rig
    await rig.runner.close()
    rig.serving.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await rig.serving
    await agent.close()
    await stack.stop()


async def until(rig: Rig, run_id: str, *statuses: RunStatus, timeout_s: float = 40.0) -> None:
    async with asyncio.timeout(timeout_s):
        while (await rig.runner.get(rig.user, run_id)).status not in statuses:
            await asyncio.sleep(0.02)


PARAMS = {"vendor": "Acme 有限公司", "amount": "118.00", "category": "Meals"}


async def start(rig: Rig, program: Mapping[str, object] = PROGRAM) -> str:
    state = await rig.runner.start_run(
        rig.user, rig.session, program=Program.model_validate(program), parameters=PARAMS
    )
    return state.run_id


async def test_a_run_fills_the_form_confirms_the_submit_and_completes_on_the_claim_number(rig: Rig) -> None:
    run_id = await start(rig)
    await until(rig, run_id, RunStatus.WAITING)
    asked = await rig.runner.get(rig.user, run_id)
    assert asked.question is not None and asked.question.kind == "confirm" and asked.step_id == "submit"
    assert rig.desk.submissions == 0, "a sensitive step waits for the user"
    await rig.runner.answer(rig.user, run_id, Decision.CONFIRM, asked.question.question_id)
    await until(rig, run_id, RunStatus.COMPLETE)
    view = await rig.runner.get(rig.user, run_id)
    assert rig.desk.fields == {
        "Line": "80.00",
        "Vendor": "Acme 有限公司",
        "Amount": "118.00",
        "Category": "Meals",
    }
    assert rig.desk.submissions == 1
    assert view.bindings["claim"] == "CLM-1001"
    assert [(t.step_id, t.row, t.outcome) for t in view.steps] == [
        ("read_notes", None, "ok"),
        ("type_line", 0, "ok"),
        ("type_line", 1, "ok"),
        ("type_vendor", None, "ok"),
        ("type_amount", None, "ok"),
        ("pick_category", None, "ok"),
        ("submit", None, "ok"),
        ("final_checks", None, "ok"),
    ]
    submit = view.steps[6]
    assert submit.found_by == "role+name" and submit.checks[0].held and submit.checks[0].actual == "CLM-1001"
    assert [c.purpose for c in submit.commands] == ["wait", "act", "check:0"]  # waited again after asking
    listed = await rig.runner.list_runs(rig.user)
    assert [(r.run_id, r.status) for r in listed] == [(run_id, RunStatus.COMPLETE)]


async def test_a_read_keeps_what_its_pattern_matches_and_halts_when_it_is_not_there(rig: Rig) -> None:
    def program(pattern: str) -> dict[str, object]:
        return {
            "name": "Copy the hotel cost",
            "steps": [
                {
                    "id": "read_hotel",
                    "action": "read",
                    "target": {"window": NOTES, "role": "text"},
                    "save_as": "hotel",
                    "pattern": pattern,
                },
                {
                    "id": "type_hotel",
                    "action": "type",
                    "target": field_target("Amount"),
                    "input": {"binding": "hotel"},
                },
            ],
        }

    async def start(rig: Rig, program: dict[str, object]) -> str:
        state = await rig.runner.start_run(
            rig.user, rig.session, program=Program.model_validate(program), parameters={}
        )
        return state.run_id

    # The first group of the pattern, not the note's whole text (with its other lines and newline).
    run_id = await start(rig, program(r"hotel=([0-9.]+)"))
    await until(rig, run_id, RunStatus.COMPLETE)
    assert rig.desk.fields["Amount"] == "80.00"
    assert (await rig.runner.get(rig.user, run_id)).bindings["hotel"] == "80.00"
    # No group: the whole match. Not there: the run halts before typing anything.
    run_id = await start(rig, program(r"taxi=[0-9.]+"))
    await until(rig, run_id, RunStatus.COMPLETE)
    assert rig.desk.fields["Amount"] == "taxi=12.50"
    rig.desk.fields.clear()
    run_id = await start(rig, program(r"flight=[0-9.]+"))
    await until(rig, run_id, RunStatus.WAITING)
    halted = await rig.runner.get(rig.user, run_id)
    assert halted.question is not None and halted.question.kind == "halt" and halted.step_id == "read_hotel"
    assert "flight" in halted.question.reason and "Amount" not in rig.desk.fields


async def test_find_text_looks_for_its_pattern_and_keeps_the_first_group(rig: Rig) -> None:
    def program(pattern: str) -> Program:
        return Program.model_validate(
            {
                "name": "See the page",
                "steps": [
                    {
                        "id": "see",
                        "action": "find_text",
                        "window": FORM,
                        "pattern": pattern,
                        "save_as": "seen",
                    },
                    {
                        "id": "type_seen",
                        "action": "type",
                        "target": field_target("Vendor"),
                        "input": {"binding": "seen"},
                    },
                ],
            }
        )

    state = await rig.runner.start_run(rig.user, rig.session, program=program(r"New (\w+)"), parameters={})
    await until(rig, state.run_id, RunStatus.COMPLETE)
    assert rig.desk.fields["Vendor"] == "claim"
    state = await rig.runner.start_run(rig.user, rig.session, program=program(r"Old \w+"), parameters={})
    await until(rig, state.run_id, RunStatus.WAITING)
    halted = await rig.runner.get(rig.user, state.run_id)
    assert halted.question is not None and halted.step_id == "see"


async def test_a_silently_dropped_field_halts_the_run_which_is_never_complete(rig: Rig) -> None:
    rig.desk.drop.add("Amount")
    run_id = await start(rig)
    await until(rig, run_id, RunStatus.WAITING)
    view = await rig.runner.get(rig.user, run_id)
    assert view.question is not None and view.question.kind == "halt" and view.step_id == "type_amount"
    assert "expected '118.00', read ''" in view.question.reason
    tries = [t for t in view.steps if t.step_id == "type_amount"]
    assert [t.outcome for t in tries] == ["failed"] * 3, "the first try and two retries"
    assert len({c.command_id for t in tries for c in t.commands if c.purpose == "act"}) == 3
    await rig.runner.answer(rig.user, run_id, Decision.ABORT)
    await until(rig, run_id, RunStatus.ABORTED)
    assert rig.desk.submissions == 0


def with_read_back(program: Mapping[str, object]) -> dict[str, object]:
    """``program`` whose submit also checks the confirmation shows the vendor and the amount typed (the
    amount as the same amount in any rendering), as the compiler makes them from a recording."""
    steps = [dict(step) for step in program["steps"]]  # type: ignore[attr-defined]
    submit = next(step for step in steps if step["id"] == "submit")
    submit["checks"] = [
        *submit["checks"],
        {"kind": "text_in_window", "window": FORM, "equals": {"param": "vendor"}},
        {"kind": "text_in_window", "window": FORM, "equals": {"param": "amount"}, "compare_as": "money"},
    ]
    return {**program, "steps": steps}


async def test_the_confirmation_is_read_back_and_a_value_the_app_dropped_halts_the_run(rig: Rig) -> None:
    program = Program.model_validate(with_read_back(PROGRAM))
    params = {**PARAMS, "amount": "1,118.00"}

    async def submitted(lose: set[str]) -> str:
        rig.desk.lose_on_submit = lose
        state = await rig.runner.start_run(rig.user, rig.session, program=program, parameters=params)
        await until(rig, state.run_id, RunStatus.WAITING)
        await rig.runner.answer(rig.user, state.run_id, Decision.CONFIRM)
        await until(rig, state.run_id, RunStatus.COMPLETE, RunStatus.WAITING)
        return state.run_id

    # Shown back as stored, "1118.00": the same amount as typed, so the run is complete.
    done = await rig.runner.get(rig.user, await submitted(set()))
    assert done.status is RunStatus.COMPLETE
    submit = next(t for t in done.steps if t.step_id == "submit")
    assert [c.held for c in submit.checks] == [True, True, True]
    assert submit.checks[1].actual == "Acme 有限公司" and "1118.00" in submit.checks[2].actual
    # The app files the claim without its vendor: the run halts on the submit, which it never repeats,
    # and the checks after the one that failed wait for nothing.
    run_id = await submitted({"Vendor"})
    halted = await rig.runner.get(rig.user, run_id)
    assert halted.status is RunStatus.WAITING and halted.question is not None
    assert halted.question.kind == "halt" and halted.step_id == "submit"
    assert "expected 'Acme 有限公司'" in halted.question.reason
    (submit,) = [t for t in halted.steps if t.step_id == "submit"]
    assert [c.held for c in submit.checks] == [True, False] and rig.desk.submissions == 2
    # Nothing answered through accessibility: OCR reads the check's window only, never the screen.
    frames = rig.desk.actions("take_frame")
    assert frames and {f.workflow_step.take_frame.window.app_id for f in frames} == {"chromium"}
    await rig.runner.answer(rig.user, run_id, Decision.ABORT)
    await until(rig, run_id, RunStatus.ABORTED)


async def test_a_target_that_never_appears_halts_after_its_retries_and_skip_ends_failed(rig: Rig) -> None:
    rig.desk.missing.add("Vendor")
    run_id = await start(rig)
    await until(rig, run_id, RunStatus.WAITING)
    view = await rig.runner.get(rig.user, run_id)
    assert view.step_id == "type_vendor" and "element_exists not met" in (
        view.question.reason if view.question else ""
    )
    waits = [
        c for c in rig.desk.actions("wait_for") if c.workflow_step.wait_for.element_exists.name == "Vendor"
    ]
    assert len(waits) == 3
    assert not [
        c for c in rig.desk.actions("type_text") if c.workflow_step.type_text.element.name == "Vendor"
    ]
    await rig.runner.answer(rig.user, run_id, Decision.SKIP)
    await until(rig, run_id, RunStatus.WAITING)  # the submit asks next
    await rig.runner.answer(rig.user, run_id, Decision.CONFIRM)
    await until(rig, run_id, RunStatus.FAILED)
    done = await rig.runner.get(rig.user, run_id)
    assert done.skipped == ["type_vendor"] and "not every postcondition" in done.error


async def test_a_server_restart_mid_submit_resumes_without_submitting_twice(rig: Rig) -> None:
    rig.desk.hold.add("Submit")
    run_id = await start(rig)
    await until(rig, run_id, RunStatus.WAITING)
    await rig.runner.answer(rig.user, run_id, Decision.CONFIRM)
    async with asyncio.timeout(10):
        while not rig.desk.held:
            await asyncio.sleep(0.02)
    await rig.restart_runner()  # the server stops while the submit is out on the desktop
    stored = await rig.runner.runs.load(rig.user, run_id)
    assert stored.status is RunStatus.RUNNING and stored.cursor.phase == "acting"
    # The agent finishes the submit and reports it; the resumed run picks up that very command.
    held = rig.desk.held[0]
    rig.desk.released.set()
    await until(rig, run_id, RunStatus.COMPLETE)
    assert rig.desk.submissions == 1
    assert [c.command_id for c in rig.desk.actions("click_element")] == [held.command_id]
    assert (await rig.runner.get(rig.user, run_id)).bindings["claim"] == "CLM-1001"


async def test_an_agent_interrupted_mid_submit_halts_and_never_resubmits_by_itself(rig: Rig) -> None:
    rig.desk.interrupt.add("Submit")
    run_id = await start(rig)
    await until(rig, run_id, RunStatus.WAITING)
    await rig.runner.answer(rig.user, run_id, Decision.CONFIRM)
    async with asyncio.timeout(20):
        while True:
            view = await rig.runner.get(rig.user, run_id)
            if view.question is not None and view.question.kind == "halt":
                break
            await asyncio.sleep(0.02)
    assert "interrupted" in view.question.reason
    assert len(rig.desk.actions("click_element")) == 1
    # The user looks: the claim went through. Taking over reads the postconditions back.
    await rig.runner.answer(rig.user, run_id, Decision.TAKE_OVER)
    await until(rig, run_id, RunStatus.COMPLETE)
    assert rig.desk.submissions == 1
    assert (await rig.runner.get(rig.user, run_id)).steps[-2].outcome == "taken_over"


async def test_runs_are_their_users_own(rig: Rig, alice: str) -> None:
    run_id = await start(rig)
    with pytest.raises(NotFoundError):
        await rig.runner.get(alice, run_id)
    with pytest.raises(NotFoundError):
        await rig.runner.answer(alice, run_id, Decision.ABORT)
    with pytest.raises(NotFoundError):
        await rig.runner.cancel(alice, run_id)
    assert await rig.runner.list_runs(alice) == []
    with pytest.raises(NotFoundError):  # alice has no such session
        await rig.runner.start_run(
            alice, rig.session, program=Program.model_validate(PROGRAM), parameters=PARAMS
        )
    with pytest.raises(InvalidMessageError, match="already running"):
        await start(rig)
    cancelled = await rig.runner.cancel(rig.user, run_id)
    assert cancelled.status is RunStatus.CANCELLED and rig.desk.submissions == 0


def test_parameters_are_checked_before_a_run_starts() -> None:
    program = Program.model_validate(
        {
            **PROGRAM,
            "parameters": [*PROGRAM["parameters"], {"name": "password", "type": "secret"}],
        }
    )
    with pytest.raises(InvalidMessageError, match="unknown parameters: colour"):
        check_parameters(program, {**PARAMS, "colour": "red"}, {"password": "x"})
    with pytest.raises(InvalidMessageError, match="'vendor' is required"):
        check_parameters(program, {"amount": "1", "category": "Meals"}, {"password": "x"})
    with pytest.raises(InvalidMessageError, match="one of: Travel, Meals"):
        check_parameters(program, {**PARAMS, "category": "Golf"}, {"password": "x"})
    with pytest.raises(InvalidMessageError, match="give it in secrets"):
        check_parameters(program, {**PARAMS, "password": "x"}, {})
    values, secrets = check_parameters(program, PARAMS, {"password": "x"})
    assert values == PARAMS and secrets == {"password"}
    leaky = Program.model_validate(
        {
            "name": "leak",
            "parameters": [{"name": "password", "type": "secret"}],
            "steps": [{"id": "paste", "action": "set_clipboard", "input": {"param": "password"}}],
        }
    )
    with pytest.raises(InvalidMessageError, match="only ever typed"):
        check_parameters(leaky, {}, {"password": "x"})


def test_the_runner_never_imports_the_llm_gateway() -> None:
    """Replays make zero model calls: nothing the runner is built from can reach the gateway."""
    folder = Path(__file__).resolve().parents[3] / "cloud_infer" / "workflows"
    for path, imports in absolute_imports(sorted(folder.glob("runner*.py"))).items():
        modules = [module for _, module in imports]
        assert not [m for m in modules if m.startswith(("cloud_infer.llm", "cloud_infer.assist"))], path


async def test_the_api_starts_follows_answers_and_keeps_runs_to_their_owner(
    rig: Rig, settings: ServerSettings, alice: str
) -> None:
    services = Services.create(settings, rig.store, commands=rig.stack.commands, workflow_runs=rig.runner)
    body = {"program": PROGRAM, "session_id": rig.session, "parameters": PARAMS}
    async with serve_api(build_app(settings, services)) as api:
        url = f"ws://127.0.0.1:{api.base_url.port}/v1/workflows/live"
        token = issue_token(SECRET, rig.user, "read")
        protocols = [Subprotocol("shadowdesk.v1"), Subprotocol(f"bearer.{token}")]
        async with websockets.connect(url, subprotocols=protocols) as socket:
            refused = await api.post("/v1/workflows/runs", json=body, headers=read_auth(rig.user))
            assert refused.status_code == 403, "starting a run needs manage"
            bad = await api.post(
                "/v1/workflows/runs",
                json={**body, "program": {"name": "x", "steps": []}},
                headers=manage_auth(rig.user),
            )
            assert bad.status_code == 400 and "invalid program: steps" in bad.json()["message"]
            started = await api.post("/v1/workflows/runs", json=body, headers=manage_auth(rig.user))
            assert started.status_code == 200, started.text
            run_id = started.json()["run_id"]
            async with asyncio.timeout(30):
                while True:
                    message = json.loads(await socket.recv())
                    if message["type"] == "run" and message["run"]["status"] == "waiting":
                        break
            question = message["run"]["question"]
            assert question["kind"] == "confirm" and question["options"] == ["confirm", "reject"]
            for other in (
                api.get(f"/v1/workflows/runs/{run_id}", headers=read_auth(alice)),
                api.post(
                    f"/v1/workflows/runs/{run_id}/answer",
                    json={"decision": "abort"},
                    headers=manage_auth(alice),
                ),
                api.post(f"/v1/workflows/runs/{run_id}/cancel", headers=manage_auth(alice)),
            ):
                assert (await other).status_code == 404
            assert (await api.get("/v1/workflows/runs", headers=read_auth(alice))).json() == {"runs": []}
            wrong = await api.post(
                f"/v1/workflows/runs/{run_id}/answer",
                json={"decision": "skip"},
                headers=manage_auth(rig.user),
            )
            assert wrong.status_code == 400 and "confirm, reject" in wrong.json()["message"]
            readonly = await api.post(
                f"/v1/workflows/runs/{run_id}/answer",
                json={"decision": "confirm"},
                headers=read_auth(rig.user),
            )
            assert readonly.status_code == 403
            confirmed = await api.post(
                f"/v1/workflows/runs/{run_id}/answer",
                json={"decision": "confirm", "question_id": question["question_id"]},
                headers=manage_auth(rig.user),
            )
            assert confirmed.status_code == 200 and confirmed.json()["status"] == "running"
            steps = []
            async with asyncio.timeout(30):
                while True:
                    message = json.loads(await socket.recv())
                    if message["type"] == "step":
                        steps.append(message["step"]["step_id"])
                    if message["type"] == "run" and message["run"]["status"] == "complete":
                        break
            assert steps == ["submit", "final_checks"]
        trace = (await api.get(f"/v1/workflows/runs/{run_id}", headers=read_auth(rig.user))).json()
        assert trace["status"] == "complete" and trace["bindings"]["claim"] == "CLM-1001"
        assert len(trace["steps"]) == 8 and trace["steps"][-1]["checks"][0]["held"]
        history = (await api.get("/v1/workflows/runs", headers=read_auth(rig.user))).json()["runs"]
        assert [(r["run_id"], r["status"], r["name"]) for r in history] == [
            (run_id, "complete", "File a claim")
        ]
