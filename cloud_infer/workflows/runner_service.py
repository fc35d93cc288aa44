"""Runs of macros for their users: start, answer, cancel, read, list, follow live, resume after a restart.

``WorkflowRunService`` owns one ``RunEngine`` task per unfinished run. It checks a run before it starts
(the program validates, every required parameter is given, secrets come only as secrets and are used
only to be typed), keeps one run per desktop session at a time, and on ``start()`` resumes every run
the store's index says is unfinished (a waiting run keeps waiting for its answer; a running one goes on
from its last stored phase). Closing the service stops the tasks without finishing their runs, so the
next server resumes them. Secrets live in this process only: a run resumed after a restart that still
needs one halts and asks.

Every method takes the caller's user id; a run is looked up in that user's space only, so a user never
reaches another user's runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from cloud_infer.commands.service import CommandService, SessionRef
from cloud_infer.errors import InvalidMessageError, NotFoundError, RateLimitedError
from cloud_infer.recall.ocr import OcrEngine
from cloud_infer.workflows.program import (
    Check,
    Input,
    Loop,
    ParamInput,
    Program,
    Step,
)
from cloud_infer.workflows.runner import RunEngine
from cloud_infer.workflows.runner_config import RunnerSettings
from cloud_infer.workflows.runner_desktop import RunDesktop
from cloud_infer.workflows.runner_protocol import (
    Decision,
    RunState,
    RunStatus,
    RunSummary,
    RunView,
    StepTrace,
)
from cloud_infer.workflows.runner_store import RunStore, new_run_id
from recall_store.store import ObjectStore

logger = logging.getLogger(__name__)

_SUBSCRIPTION_QUEUE = 256
MAX_LISTED = 200
_ANSWER_TAKEN_S = 10.0


class MacroSource(Protocol):
    """Where stored macros are read (the macro store): the user's macro ``macro_id`` as a Program."""

    async def program(self, user_id: str, macro_id: str) -> Program: ...


class RunSubscription:
    """Changes of one user's runs: ``{"type": "run", "run": RunSummary}`` and ``{"type": "step", ...}``."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.dropped = 0
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_SUBSCRIPTION_QUEUE)

    def offer(self, message: dict[str, Any]) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(message)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self._queue.get()


@dataclass
class _Running:
    engine: RunEngine
    task: asyncio.Task[None]


class WorkflowRunService:
    def __init__(
        self,
        store: ObjectStore,
        commands: CommandService,
        settings: RunnerSettings | None = None,
        *,
        macros: MacroSource | None = None,
        ocr: OcrEngine | None = None,
    ) -> None:
        self.settings = settings or RunnerSettings()
        self.runs = RunStore(store)
        self.macros = macros
        self._store = store
        self._commands = commands
        self._ocr = ocr or OcrEngine(self.settings.ocr_threads)
        self._running: dict[str, _Running] = {}
        self._subscriptions: set[RunSubscription] = set()
        self._resumer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Resume the runs a previous server left unfinished (in the background)."""
        self._resumer = asyncio.create_task(self._resume_all(), name="workflow-runs-resume")

    async def close(self) -> None:
        """Stop every run's task; the runs stay unfinished in the store, for the next server."""
        tasks = [running.task for running in self._running.values()]
        if self._resumer is not None:
            tasks.append(self._resumer)
        await asyncio.gather(*(_stop(task) for task in tasks))
        self._running.clear()

    async def wait_idle(self, run_id: str) -> None:
        """Until the run's task ends (for tests and benchmarks)."""
        running = self._running.get(run_id)
        if running is not None:
            await asyncio.gather(running.task, return_exceptions=True)

    # --- the Python API --------------------------------------------------------------------------

    async def start_run(
        self,
        user_id: str,
        session_id: str,
        *,
        program: Program | None = None,
        macro_id: str | None = None,
        parameters: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
    ) -> RunState:
        """Start a run of ``program`` (or the user's stored macro ``macro_id``) on their session.

        InvalidMessageError (a bad program or parameters; the session already runs one), NotFoundError
        (no such session or macro of the user), RateLimitedError (too many runs at once).
        """
        if (program is None) == (macro_id is None):
            raise InvalidMessageError("give exactly one of macro_id and program")
        if macro_id is not None:
            if self.macros is None:
                raise NotFoundError("stored macros are not available on this server")
            program = await self.macros.program(user_id, macro_id)
        assert program is not None
        values, secret_names = check_parameters(program, parameters or {}, secrets or {})
        session = SessionRef(user_id, session_id)
        async with self._commands.outbox.editing(user_id, session_id):
            pass  # NotFoundError: no agent of this user ever opened that session
        async with self._lock:
            # A run whose status is final is only tidying up (its last save): it no longer holds the session.
            active = [
                r.engine.state
                for r in self._running.values()
                if r.engine.state.user_id == user_id and not r.engine.state.status.final
            ]
            if any(state.session_id == session_id for state in active):
                raise InvalidMessageError(
                    f"session {session_id!r} is already running a macro: wait or cancel it"
                )
            if len(active) >= self.settings.max_active_runs:
                raise RateLimitedError(
                    f"at most {self.settings.max_active_runs} runs at once", retry_after_s=10.0
                )
            now = time.time_ns()
            state = RunState(
                run_id=new_run_id(),
                user_id=user_id,
                session_id=session.session_id,
                macro_id=macro_id,
                program=program.model_dump(mode="json"),
                parameters=values,
                secret_parameters=sorted(secret_names),
                created_ns=now,
                updated_ns=now,
            )
            await self.runs.save(state)
            self._launch(state, program, {name: (secrets or {})[name] for name in secret_names})
        return state.model_copy(deep=True)

    async def answer(
        self, user_id: str, run_id: str, decision: Decision, question_id: str | None = None
    ) -> RunState:
        """Answer the question the run waits on. InvalidMessageError when it waits on none, or on another."""
        state = await self._current(user_id, run_id)
        question = state.question
        if state.status is not RunStatus.WAITING or question is None:
            raise InvalidMessageError(f"run {run_id} is {state.status}: it asks nothing now")
        if question_id is not None and question_id != question.question_id:
            raise InvalidMessageError("that question was already answered; read the run again")
        if decision not in question.options:
            options = ", ".join(option.value for option in question.options)
            raise InvalidMessageError(f"the question is answered with one of: {options}")
        running = self._running.get(run_id)
        if running is None:
            raise InvalidMessageError(f"run {run_id} is not running on this server")
        taken = running.engine.answer(question.question_id, decision)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_ANSWER_TAKEN_S):
                await asyncio.shield(taken)
        return await self._current(user_id, run_id)

    async def cancel(self, user_id: str, run_id: str) -> RunState:
        """Stop the run now (its pending command is cancelled too); a finished run is returned as is."""
        state = await self._current(user_id, run_id)
        running = self._running.get(run_id)
        if state.status.final or running is None:
            return state
        running.engine.cancel_requested = True
        await _stop(running.task)
        return await self.runs.load(user_id, run_id)

    async def get(self, user_id: str, run_id: str) -> RunView:
        state = await self._current(user_id, run_id)
        traces = await self.runs.traces(user_id, run_id)
        return RunView(**summary_of(state).model_dump(), bindings=state.bindings, steps=traces)

    async def list_runs(self, user_id: str, macro_id: str | None = None, limit: int = 50) -> list[RunSummary]:
        states = await self.runs.recent(user_id, MAX_LISTED)
        if macro_id is not None:
            states = [state for state in states if state.macro_id == macro_id]
        return [summary_of(self._live_state(state)) for state in states[:limit]]

    @contextlib.contextmanager
    def subscribe(self, user_id: str) -> Iterator[RunSubscription]:
        subscription = RunSubscription(user_id)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    # --- internals -------------------------------------------------------------------------------

    async def _current(self, user_id: str, run_id: str) -> RunState:
        running = self._running.get(run_id)
        if running is not None and running.engine.state.user_id == user_id:
            return running.engine.state.model_copy(deep=True)
        return await self.runs.load(user_id, run_id)

    def _live_state(self, state: RunState) -> RunState:
        running = self._running.get(state.run_id)
        if running is not None and running.engine.state.user_id == state.user_id:
            return running.engine.state.model_copy(deep=True)
        return state

    def _launch(self, state: RunState, program: Program, secrets: dict[str, str]) -> None:
        desktop = RunDesktop(
            self._commands,
            SessionRef(state.user_id, state.session_id),
            self._store,
            self._ocr,
            self.settings.command_margin_s,
        )
        engine = RunEngine(state, program, secrets, desktop, self.runs, self.settings, self._publish)
        task = asyncio.create_task(self._supervise(engine), name=f"workflow-run-{state.run_id}")
        self._running[state.run_id] = _Running(engine, task)

    async def _supervise(self, engine: RunEngine) -> None:
        state = engine.state
        try:
            await engine.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("run %s stopped by an error", state.run_id)
            state.status, state.error, state.finished_ns = (
                RunStatus.FAILED,
                f"internal error: {exc}"[:500],
                time.time_ns(),
            )
            with contextlib.suppress(Exception):
                await self.runs.save(state)
            self._publish(state, None)
        finally:
            self._running.pop(state.run_id, None)

    async def _resume_all(self) -> None:
        for user_id, run_id in await self.runs.unfinished():
            try:
                state = await self.runs.load(user_id, run_id)
            except NotFoundError:
                await self.runs.forget_unfinished(user_id, run_id)
                continue
            if state.status.final:
                await self.runs.forget_unfinished(user_id, run_id)
                continue
            try:
                program = Program.model_validate(state.program)
            except ValidationError as exc:
                state.status, state.error, state.finished_ns = (
                    RunStatus.FAILED,
                    f"program invalid: {exc}"[:500],
                    time.time_ns(),
                )
                await self.runs.save(state)
                continue
            state.generation += 1
            logger.info(
                "resuming run %s at step %s (%s)", run_id, current_step_id(state, program), state.status
            )
            self._launch(state, program, {})

    def _publish(self, state: RunState, trace: StepTrace | None) -> None:
        if trace is not None:
            message: dict[str, Any] = {
                "type": "step",
                "run_id": state.run_id,
                "step": trace.model_dump(mode="json"),
            }
        else:
            message = {"type": "run", "run": summary_of(state).model_dump(mode="json")}
        for subscription in self._subscriptions:
            if subscription.user_id == state.user_id:
                subscription.offer(message)


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it to end; again while it lives (a library's ``asyncio.wait_for`` in
    Python 3.11 can swallow a cancellation that meets its own timeout)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)


def current_step_id(state: RunState, program: Program | None = None) -> str | None:
    if state.status.final:
        return None
    if state.question is not None:
        return state.question.step_id
    program = program or Program.model_validate(state.program)
    cursor = state.cursor
    if cursor.entry >= len(program.steps):
        return "final_checks" if cursor.entry == len(program.steps) else None
    entry = program.steps[cursor.entry]
    if isinstance(entry, Loop):
        return entry.steps[min(cursor.body, len(entry.steps) - 1)].id
    return entry.id


def summary_of(state: RunState) -> RunSummary:
    return RunSummary(
        run_id=state.run_id,
        session_id=state.session_id,
        macro_id=state.macro_id,
        name=str(state.program.get("name", "")),
        status=state.status,
        step_id=current_step_id(state),
        question=state.question,
        skipped=state.skipped,
        error=state.error,
        created_ns=state.created_ns,
        updated_ns=state.updated_ns,
        finished_ns=state.finished_ns,
        traces=state.traces,
        commands=state.commands,
    )


def program_from_document(document: dict[str, Any]) -> Program:
    """A program document (JSON form) validated; InvalidMessageError says what is wrong."""
    try:
        return Program.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()[:10]
        )
        raise InvalidMessageError(f"invalid program: {problems}"[:2000]) from None


def _all_steps(program: Program) -> Iterator[Step]:
    for entry in program.steps:
        if isinstance(entry, Loop):
            yield from entry.steps
        else:
            yield entry


def _checks(program: Program) -> Iterator[Check]:
    for step in _all_steps(program):
        yield from step.checks
    yield from program.final_checks


def check_parameters(
    program: Program, parameters: dict[str, str], secrets: dict[str, str]
) -> tuple[dict[str, str], set[str]]:
    """The run's parameter values (defaults filled in) and the names of its secret parameters.

    InvalidMessageError for an unknown or missing parameter, a secret given as a plain parameter (or
    the reverse), a choice not among its choices, or a secret used other than typed into a field.
    """
    declared = {parameter.name: parameter for parameter in program.parameters}
    unknown = sorted((set(parameters) | set(secrets)) - set(declared))
    if unknown:
        raise InvalidMessageError(f"unknown parameters: {', '.join(unknown)}")
    values: dict[str, str] = {}
    secret_names: set[str] = set()
    for name, parameter in declared.items():
        if parameter.type == "secret":
            if name in parameters:
                raise InvalidMessageError(f"{name!r} is a secret: give it in secrets, never in parameters")
            if name in secrets:
                secret_names.add(name)
            elif parameter.required:
                raise InvalidMessageError(f"the secret {name!r} is required")
            continue
        if name in secrets:
            raise InvalidMessageError(f"{name!r} is not a secret parameter")
        value = parameters.get(name, parameter.default)
        if value is None:
            if parameter.required:
                raise InvalidMessageError(f"the parameter {name!r} is required")
            continue
        if parameter.type == "choice" and value not in parameter.choices:
            raise InvalidMessageError(f"{name!r} must be one of: {', '.join(parameter.choices)}")
        values[name] = value
    secret_params = {name for name, parameter in declared.items() if parameter.type == "secret"}

    def is_secret(value: Input | None) -> bool:
        return isinstance(value, ParamInput) and value.param in secret_params

    for step in _all_steps(program):
        if is_secret(step.input) and step.action != "type":
            raise InvalidMessageError(f"step {step.id!r}: a secret is only ever typed into a field")
    for check in _checks(program):
        if is_secret(check.equals) or is_secret(check.path):
            raise InvalidMessageError("a check never reads back a secret")
    return values, secret_names
