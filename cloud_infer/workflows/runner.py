"""The runner: replays a Program on a user's desktop, step by step, and proves each step worked.

For each step (per row, inside a loop): wait for its target through the agent (``WaitFor`` with the
step's timeout, never a fixed sleep), ask the user first if it is sensitive, act once (one command
whose idempotency key is derived from the run, the step, the row and the try, so a command delivered
again or re-issued after a restart never acts twice), then read every postcondition back
(accessibility; a frame and OCR when accessibility has no answer). A transient failure (target not
there yet, a check that does not hold yet) is tried again after an exponential backoff, up to the
step's ``retries``; then the run halts and asks the user: retry, skip, take over (the user does it by
hand, then the postconditions are read back), or abort. A sensitive step whose action may have run is
never tried again without the user, nor is a step whose command the agent reports interrupted.

The run's state is stored after every phase of every step (``runner_store.py``), so a restarted server
resumes it where it stood. The run is ``complete`` only when every step ran and every postcondition
held, ``final_checks`` included. Nothing here calls a language model.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Literal

import re2

from cloud_infer.workflows.program import (
    BindingInput,
    Check,
    ElementTarget,
    Input,
    ItemInput,
    LiteralInput,
    Loop,
    ParamInput,
    Program,
    Step,
    WindowTarget,
)
from cloud_infer.workflows.runner_config import RunnerSettings
from cloud_infer.workflows.runner_desktop import (
    CommandOutcomeError,
    Outcome,
    RunDesktop,
    element_ref,
    found_by,
    idempotency_key,
    window_ref,
)
from cloud_infer.workflows.runner_protocol import (
    CONFIRM_OPTIONS,
    HALT_OPTIONS,
    CheckTrace,
    CommandTrace,
    Decision,
    FrameRef,
    Question,
    RunState,
    RunStatus,
    StepOutcome,
    StepTrace,
)
from cloud_infer.workflows.runner_store import RunStore
from cloud_infer.workflows.values import rendering_pattern
from protos.shadowdesk.v1 import ingest_pb2 as pb

logger = logging.getLogger(__name__)

FINAL_CHECKS_ID = "final_checks"
_CHECK_POLL_S = 0.25
# A field read back right after typing may still be settling (formatting, a framework re-render).
_FIELD_SETTLE_S = 2.0
_MS_PER_S = 1000


class StepFailedError(Exception):
    """A step did not work; ``transient``: trying it again may help."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


def _text(value: str) -> str:
    """Text compared the way a person would read it: whitespace runs are one space, ends trimmed."""
    return " ".join(value.split())


def _squeezed(value: str) -> str:
    """OCR drops and adds spaces: compare without any, case-folded."""
    return "".join(value.split()).casefold()


class RunEngine:
    """One run, from its stored state to a final status."""

    def __init__(
        self,
        state: RunState,
        program: Program,
        secrets: dict[str, str],
        desktop: RunDesktop,
        store: RunStore,
        settings: RunnerSettings,
        on_change: Callable[[RunState, StepTrace | None], None],
    ) -> None:
        self.state = state
        self.program = program
        self._secrets = secrets
        self._desktop = desktop
        self._store = store
        self._settings = settings
        self._on_change = on_change
        self._answers: asyncio.Queue[tuple[str | None, Decision, asyncio.Future[None]]] = asyncio.Queue()
        self._issued_before = state.commands
        self.cancel_requested = False
        self._final = Step(
            id=FINAL_CHECKS_ID, name="Final checks", action="wait", checks=program.final_checks, retries=2
        )

    # --- driving ---------------------------------------------------------------------------------

    def answer(self, question_id: str | None, decision: Decision) -> asyncio.Future[None]:
        """Hand the user's answer to the run (the service has checked it fits the question); the
        future is done once the run took it and stored what it changed."""
        taken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._answers.put_nowait((question_id, decision, taken))
        return taken

    async def run(self) -> None:
        """Run until a final status; the state is stored at every change."""
        try:
            while not self.state.status.final:
                if self.state.question is not None:
                    await self._take_answer()
                    continue
                located = self._locate()
                if located is None:
                    await self._finish()
                    return
                step, row, items = located
                await self._step(step, row, items)
        except asyncio.CancelledError:
            if self.cancel_requested:
                await self._desktop.cancel_pending()
                self.state.question = None
                await self._end(RunStatus.CANCELLED, "cancelled by the user")
            raise

    # --- where the run stands --------------------------------------------------------------------

    def _locate(self) -> tuple[Step, int | None, dict[str, str]] | None:
        """The step at the cursor (and its loop row), moving past finished loops; None when done."""
        cursor, steps = self.state.cursor, self.program.steps
        while True:
            if cursor.entry == len(steps):
                return (self._final, None, {}) if self.program.final_checks else None
            if cursor.entry > len(steps):
                return None
            entry = steps[cursor.entry]
            if isinstance(entry, Step):
                return entry, None, {}
            rows = self._rows(entry)
            if cursor.row is None:
                cursor.row, cursor.body = 0, 0
            if cursor.row >= len(rows):
                cursor.entry, cursor.row, cursor.body = cursor.entry + 1, None, 0
                continue
            return entry.steps[cursor.body], cursor.row, rows[cursor.row]

    def _rows(self, loop: Loop) -> list[dict[str, str]]:
        """The rows of the loop: each line of its bound text that its RE2 pattern matches."""
        text = self.state.bindings.get(loop.over)
        if text is None:
            if loop.id not in self.state.skipped:
                self.state.skipped.append(loop.id)  # its input was never read: it cannot run
            return []
        pattern = re2.compile(loop.row_pattern)
        rows = []
        for line in text.splitlines():
            match = pattern.search(line)
            if match is not None:
                rows.append({name: value or "" for name, value in match.groupdict().items()})
        return rows

    def _advance(self) -> None:
        cursor, steps = self.state.cursor, self.program.steps
        entry = steps[cursor.entry] if cursor.entry < len(steps) else None
        if isinstance(entry, Loop):
            cursor.body += 1
            if cursor.body >= len(entry.steps):
                cursor.body = 0
                cursor.row = (cursor.row or 0) + 1
        else:
            cursor.entry += 1
        cursor.phase, cursor.attempt, cursor.tries = "start", 0, 0
        cursor.confirmed = cursor.taken_over = False

    # --- one step --------------------------------------------------------------------------------

    async def _step(self, step: Step, row: int | None, items: dict[str, str]) -> None:
        cursor = self.state.cursor
        trace = StepTrace(
            index=self.state.traces,
            step_id=step.id,
            name=step.name,
            action=step.action,
            row=row,
            attempt=cursor.attempt,
            outcome="ok",
            started_ns=time.time_ns(),
            finished_ns=0,
        )
        try:
            if cursor.phase == "start":
                if self._settings.frames == "before_after":
                    trace.frame_before = await self._frame(step, row, "frame:before", trace.commands)
                started = time.perf_counter()
                trace.found_by = await self._wait_for_target(step, items, trace.commands, row)
                trace.wait_ms = round((time.perf_counter() - started) * _MS_PER_S, 1)
                if step.sensitive and not cursor.confirmed and not cursor.taken_over:
                    await self._ask(
                        "confirm",
                        step,
                        row,
                        f"{step.name or step.id} is marked sensitive: confirm to let it act",
                    )
                    return
                cursor.phase = "acting"
                await self._save()
            if cursor.phase == "acting":
                if not cursor.taken_over:
                    started = time.perf_counter()
                    acted = await self._act(step, items, trace.commands, row)
                    trace.found_by = trace.found_by or acted
                    trace.act_ms = round((time.perf_counter() - started) * _MS_PER_S, 1)
                cursor.phase = "checking"
                await self._save()
            started = time.perf_counter()
            trace.checks = await self._check_all(step, items, trace.commands, row)
            trace.check_ms = round((time.perf_counter() - started) * _MS_PER_S, 1)
            failed = [check for check in trace.checks if not check.held]
            if failed:
                raise StepFailedError("; ".join(_describe(check) for check in failed))
        except (StepFailedError, CommandOutcomeError) as exc:
            await self._failed(step, row, trace, exc)
            return
        if self._settings.frames != "off":
            trace.frame_after = await self._frame(step, row, "frame:after", trace.commands)
        await self._write(trace, "taken_over" if cursor.taken_over else "ok")
        self._advance()
        await self._save()

    async def _failed(
        self, step: Step, row: int | None, trace: StepTrace, exc: StepFailedError | CommandOutcomeError
    ) -> None:
        cursor = self.state.cursor
        trace.error = str(exc)[:2000]
        trace.frame_after = await self._frame(step, row, "frame:after", trace.commands)
        await self._write(trace, "failed")
        interrupted = isinstance(exc, CommandOutcomeError) and exc.interrupted
        # A sensitive action that may have run (a submit) is never repeated without the user.
        acted = step.sensitive and cursor.phase != "start"
        retryable = exc.transient and not interrupted and not acted and not cursor.taken_over
        if retryable and cursor.tries < step.retries:
            delay = min(self._settings.backoff_base_s * 2**cursor.tries, self._settings.backoff_max_s)
            cursor.tries += 1
            cursor.attempt += 1
            cursor.phase = "start"
            await self._save()
            await asyncio.sleep(delay)
            return
        what = "the agent was interrupted" if interrupted else "it failed"
        tries = cursor.tries + 1
        await self._ask(
            "halt", step, row, f"{step.name or step.id}: {what} after {tries} tries: {trace.error}"
        )

    # --- waiting, acting, checking ---------------------------------------------------------------

    def _key(self, step: Step, row: int | None, purpose: str, *, read_only: bool) -> str:
        cursor = self.state.cursor
        # A read is asked again after a restart (generation); an action never is.
        generation = self.state.generation if read_only else "act"
        return idempotency_key(self.state.run_id, step.id, row, cursor.attempt, purpose, generation)

    async def _command(
        self,
        step: Step,
        row: int | None,
        action: pb.WorkflowStep,
        purpose: str,
        trace: list[CommandTrace],
        *,
        read_only: bool = True,
        timeout_s: float | None = None,
        secret: str | None = None,
    ) -> Outcome:
        return await self._desktop.run(
            action,
            key=self._key(step, row, purpose, read_only=read_only),
            timeout_s=step.timeout_s if timeout_s is None else timeout_s,
            purpose=purpose,
            trace=trace,
            secret=secret,
        )

    async def _wait_for_target(
        self, step: Step, items: dict[str, str], trace: list[CommandTrace], row: int | None
    ) -> str:
        """Wait until the step's target is there (how it was found), as long as the step's timeout."""
        if step.action in {"click", "type", "select", "read"} and step.target is not None:
            wait = pb.WaitFor(element_exists=element_ref(step.target), timeout_ms=_ms(step.timeout_s))
            outcome = await self._command(step, row, pb.WorkflowStep(wait_for=wait), "wait", trace)
            return found_by(outcome.observed)
        return ""

    async def _act(
        self, step: Step, items: dict[str, str], trace: list[CommandTrace], row: int | None
    ) -> str:
        """Do the step's action once; returns how its target was found."""
        action = step.action
        if action == "focus":
            window = _window_of(step)
            outcome = await self._command(
                step,
                row,
                pb.WorkflowStep(focus_window=pb.FocusWindow(window=window_ref(window))),
                "act",
                trace,
                read_only=False,
            )
        elif action == "launch":
            launch = pb.LaunchApp(
                executable=step.executable, args=step.args, wait_window_ms=_ms(step.timeout_s)
            )
            outcome = await self._command(
                step, row, pb.WorkflowStep(launch_app=launch), "act", trace, read_only=False
            )
        elif action == "click":
            assert step.target is not None
            click = pb.ClickElement(element=element_ref(step.target))
            outcome = await self._command(
                step, row, pb.WorkflowStep(click_element=click), "act", trace, read_only=False
            )
        elif action == "type":
            assert step.target is not None and step.input is not None
            text, secret = self._resolve(step.input, items)
            typed = pb.TypeText(element=element_ref(step.target), text="" if secret else text, replace=True)
            typed.use_secret = secret
            outcome = await self._command(
                step,
                row,
                pb.WorkflowStep(type_text=typed),
                "act",
                trace,
                read_only=False,
                secret=text if secret else None,
            )
        elif action == "select":
            assert step.target is not None and step.input is not None
            option, _ = self._resolve(step.input, items)
            select = pb.SelectOption(element=element_ref(step.target), option=option)
            outcome = await self._command(
                step, row, pb.WorkflowStep(select_option=select), "act", trace, read_only=False
            )
        elif action == "press":
            if step.window is not None or step.target is not None:
                focus = pb.FocusWindow(window=window_ref(_window_of(step)))
                await self._command(
                    step, row, pb.WorkflowStep(focus_window=focus), "act:focus", trace, read_only=False
                )
            outcome = await self._command(
                step,
                row,
                pb.WorkflowStep(press_keys=pb.PressKeys(keys=step.keys)),
                "act",
                trace,
                read_only=False,
            )
        elif action == "read":
            assert step.target is not None
            read = pb.ReadElement(element=element_ref(step.target))
            outcome = await self._command(step, row, pb.WorkflowStep(read_element=read), "act", trace)
            if outcome.observed.get("truncated") == "true":
                raise StepFailedError("the value read is longer than the agent reports", transient=False)
            self._bind(step.save_as, _extract(step.pattern, outcome.observed.get("value", "")))
        elif action == "find_text":
            text, _ = self._resolve(step.input, items) if step.input is not None else ("", False)
            find = pb.FindText(window=window_ref(_window_of(step)), text=text, pattern=step.pattern)
            wait = pb.WaitFor(text_in_window=find, timeout_ms=_ms(step.timeout_s))
            outcome = await self._command(step, row, pb.WorkflowStep(wait_for=wait), "act", trace)
            # The agent reports what the pattern matched: its first group, when it has one (as a read keeps).
            self._bind(step.save_as, outcome.observed.get("match") or outcome.observed.get("text", text))
        elif action == "set_clipboard":
            assert step.input is not None
            text, _ = self._resolve(step.input, items)
            outcome = await self._command(
                step,
                row,
                pb.WorkflowStep(set_clipboard=pb.SetClipboard(text=text)),
                "act",
                trace,
                read_only=False,
            )
        else:  # wait
            wait_for = self._wait_condition(step, items)
            if wait_for is None:
                return ""
            outcome = await self._command(step, row, pb.WorkflowStep(wait_for=wait_for), "act", trace)
        return found_by(outcome.observed)

    def _wait_condition(self, step: Step, items: dict[str, str]) -> pb.WaitFor | None:
        timeout_ms = _ms(step.timeout_s)
        if step.target is not None:
            return pb.WaitFor(element_exists=element_ref(step.target), timeout_ms=timeout_ms)
        if step.window is not None and step.input is not None:
            text, _ = self._resolve(step.input, items)
            find = pb.FindText(window=window_ref(step.window), text=text)
            return pb.WaitFor(text_in_window=find, timeout_ms=timeout_ms)
        if step.window is not None:
            return pb.WaitFor(window_focused=window_ref(step.window), timeout_ms=timeout_ms)
        return None

    async def _check_all(
        self, step: Step, items: dict[str, str], trace: list[CommandTrace], row: int | None
    ) -> list[CheckTrace]:
        results = []
        for index, check in enumerate(step.checks):
            try:
                result = await self._check(step, index, check, items, trace, row)
            except CommandOutcomeError as exc:
                if exc.interrupted:
                    raise
                result = CheckTrace(kind=check.kind, held=False, via="none", detail=str(exc)[:500])
            results.append(result)
            if not result.held:
                break  # the step failed; each later check would wait its whole timeout on a page not there
        return results

    async def _check(
        self,
        step: Step,
        index: int,
        check: Check,
        items: dict[str, str],
        trace: list[CommandTrace],
        row: int | None,
    ) -> CheckTrace:
        purpose = f"check:{index}"
        if check.kind == "field_value":
            return await self._check_field(step, index, check, items, trace, row)
        if check.kind == "text_in_window":
            return await self._check_text(step, index, check, items, trace, row)
        if check.kind == "file_exists":
            assert check.path is not None
            path, _ = self._resolve(check.path, items)
            outcome = await self._command(
                step,
                row,
                pb.WorkflowStep(file_exists=pb.FileExists(path=path)),
                purpose,
                trace,
                timeout_s=5.0,
            )
            held = outcome.observed.get("exists") == "true"
            return CheckTrace(
                kind=check.kind, held=held, via="file", expected=path, actual=outcome.observed.get("size", "")
            )
        if check.kind == "window_focused":
            window = check.window or (check.target.window if check.target else None) or _window_of(step)
            wait = pb.WaitFor(window_focused=window_ref(window), timeout_ms=_ms(step.timeout_s))
        else:  # element_exists
            target = check.target or step.target
            if target is None:
                raise StepFailedError("element_exists needs a target", transient=False)
            wait = pb.WaitFor(element_exists=element_ref(target), timeout_ms=_ms(step.timeout_s))
        try:
            outcome = await self._command(step, row, pb.WorkflowStep(wait_for=wait), purpose, trace)
        except CommandOutcomeError as exc:
            if exc.interrupted or not exc.transient:
                raise
            return CheckTrace(kind=check.kind, held=False, detail=str(exc)[:500])
        return CheckTrace(kind=check.kind, held=True, actual=found_by(outcome.observed))

    async def _check_field(
        self,
        step: Step,
        index: int,
        check: Check,
        items: dict[str, str],
        trace: list[CommandTrace],
        row: int | None,
    ) -> CheckTrace:
        """The element now holds the expected value: read back until it does or the step's time is up."""
        target = check.target or step.target
        if target is None or check.equals is None:
            raise StepFailedError("field_value needs a target and equals", transient=False)
        expected, _ = self._resolve(check.equals, items)
        read = pb.WorkflowStep(read_element=pb.ReadElement(element=element_ref(target)))
        give_up = time.monotonic() + min(step.timeout_s, _FIELD_SETTLE_S)
        poll = 0
        while True:
            try:
                outcome = await self._command(step, row, read, f"check:{index}:{poll}", trace, timeout_s=5.0)
            except CommandOutcomeError as exc:
                if exc.interrupted or not exc.transient:
                    raise
                # Accessibility has no answer for this element: read the screen instead.
                return await self._by_ocr(step, row, target.window, check.kind, expected, "", trace, str(exc))
            actual = outcome.observed.get("value", "")
            if _text(actual) == _text(expected):
                return CheckTrace(kind=check.kind, held=True, expected=expected, actual=actual)
            if time.monotonic() >= give_up:
                return CheckTrace(
                    kind=check.kind,
                    held=False,
                    expected=expected,
                    actual=actual,
                    detail="the field holds another value",
                )
            poll += 1
            await asyncio.sleep(_CHECK_POLL_S * poll)

    async def _check_text(
        self,
        step: Step,
        index: int,
        check: Check,
        items: dict[str, str],
        trace: list[CommandTrace],
        row: int | None,
    ) -> CheckTrace:
        window = check.window or (check.target.window if check.target else None) or _window_of(step)
        text = self._resolve(check.equals, items)[0] if check.equals is not None else ""
        expected = text or check.pattern
        pattern = check.pattern
        # The same amount or day in whatever rendering the app shows it (not a value of another shape).
        shown = rendering_pattern(text, check.compare_as) if text else ""
        if shown:
            text, pattern = "", shown
        find = pb.FindText(window=window_ref(window), text=text, pattern=pattern)
        wait = pb.WorkflowStep(wait_for=pb.WaitFor(text_in_window=find, timeout_ms=_ms(step.timeout_s)))
        try:
            outcome = await self._command(step, row, wait, f"check:{index}", trace)
        except CommandOutcomeError as exc:
            if exc.interrupted or not exc.transient:
                raise
            read = await self._by_ocr(
                step, row, window, check.kind, text, pattern, trace, str(exc), check.save_as
            )
            read.expected = expected  # the value, not the pattern that finds its renderings
            return read
        # The agent reports the line it found (text) and what matched in it (match).
        actual = outcome.observed.get("text", text)
        matched = outcome.observed.get("match") or (_matched(pattern, actual) if pattern else text)
        self._bind(check.save_as, matched or "")
        return CheckTrace(kind=check.kind, held=True, expected=expected, actual=matched or "")

    async def _by_ocr(
        self,
        step: Step,
        row: int | None,
        window: WindowTarget,
        kind: str,
        text: str,
        pattern: str,
        trace: list[CommandTrace],
        why: str,
        save_as: str | None = None,
    ) -> CheckTrace:
        """The check read by OCR from a frame of ``window`` only (for apps without accessibility): text
        another window shows (the invoice a value was typed from) proves nothing."""
        frame = await self._frame(step, row, "frame:ocr", trace, always=True, window=window)
        seen = await self._desktop.ocr_text(frame) if frame is not None else ""
        expected = text or pattern
        if not seen:
            return CheckTrace(
                kind=kind, held=False, via="none", expected=expected, detail=f"{why}; no frame to OCR"
            )
        if pattern:
            matched = _matched(pattern, seen)
            held = matched is not None and (not text or _squeezed(text) in _squeezed(seen))
            if held:
                self._bind(save_as, matched or "")
            return CheckTrace(kind=kind, held=held, via="ocr", expected=expected, actual=matched or "")
        held = bool(text) and _squeezed(text) in _squeezed(seen)
        if held:
            self._bind(save_as, text)
        return CheckTrace(kind=kind, held=held, via="ocr", expected=expected, actual=text if held else "")

    async def _frame(
        self,
        step: Step,
        row: int | None,
        purpose: str,
        trace: list[CommandTrace],
        *,
        always: bool = False,
        window: WindowTarget | None = None,
    ) -> FrameRef | None:
        if self._settings.frames == "off" and not always:
            return None
        key = self._key(step, row, purpose, read_only=True)
        return await self._desktop.frame(key=key, purpose=purpose, trace=trace, window=window)

    # --- inputs ----------------------------------------------------------------------------------

    def _resolve(self, value: Input, items: dict[str, str]) -> tuple[str, bool]:
        """The input's text, and whether it is a secret (typed with the command's run-time secret)."""
        if isinstance(value, LiteralInput):
            return value.literal, False
        if isinstance(value, ItemInput):
            return items.get(value.item, ""), False
        if isinstance(value, BindingInput):
            if value.binding not in self.state.bindings:
                raise StepFailedError(
                    f"{value.binding!r} was never read (its step was skipped)", transient=False
                )
            return self.state.bindings[value.binding], False
        assert isinstance(value, ParamInput)
        if value.param in self.state.secret_parameters:
            secret = self._secrets.get(value.param)
            if secret is None:
                raise StepFailedError(
                    f"the secret {value.param!r} is no longer held (the server restarted): "
                    "abort and start the run again",
                    transient=False,
                )
            return secret, True
        return self.state.parameters.get(value.param, ""), False

    def _bind(self, name: str | None, value: str) -> None:
        if name:
            self.state.bindings[name] = value

    # --- questions and the end -------------------------------------------------------------------

    async def _ask(self, kind: Literal["halt", "confirm"], step: Step, row: int | None, reason: str) -> None:
        self.state.question = Question(
            question_id=uuid.uuid4().hex[:16],
            kind=kind,
            step_id=step.id,
            row=row,
            reason=reason[:2000],
            options=list(HALT_OPTIONS if kind == "halt" else CONFIRM_OPTIONS),
            asked_ns=time.time_ns(),
        )
        self.state.status = RunStatus.WAITING
        await self._save()

    async def _take_answer(self) -> None:
        question = self.state.question
        assert question is not None
        while True:
            question_id, decision, taken = await self._answers.get()
            if (question_id is None or question_id == question.question_id) and decision in question.options:
                break
            taken.set_result(None)  # a stale answer: nothing to take
        try:
            await self._apply(question, decision)
        finally:
            if not taken.done():
                taken.set_result(None)

    async def _apply(self, question: Question, decision: Decision) -> None:
        cursor = self.state.cursor
        self.state.question = None
        self.state.status = RunStatus.RUNNING
        if decision is Decision.ABORT:
            await self._end(RunStatus.ABORTED, f"aborted by the user at {question.step_id}")
            return
        if decision is Decision.REJECT:
            await self._end(RunStatus.ABORTED, f"the user rejected the sensitive step {question.step_id}")
            return
        if decision is Decision.CONFIRM:
            cursor.confirmed = True
            cursor.attempt += 1  # wait for the target afresh: the user may have taken minutes
        elif decision is Decision.RETRY:
            cursor.attempt += 1
            cursor.tries = 0
            cursor.phase = "start"
            cursor.taken_over = False
        elif decision is Decision.TAKE_OVER:
            cursor.attempt += 1
            cursor.taken_over = True
            cursor.phase = "checking"  # the user acted: what the step promises is read back
        elif decision is Decision.SKIP:
            label = question.step_id if question.row is None else f"{question.step_id}[{question.row}]"
            self.state.skipped.append(label)
            now = time.time_ns()
            step = self._locate()
            name = step[0].name if step else ""
            action = step[0].action if step else ""
            await self._write(
                StepTrace(
                    index=self.state.traces,
                    step_id=question.step_id,
                    name=name,
                    action=action,
                    row=question.row,
                    attempt=cursor.attempt,
                    outcome="skipped",
                    started_ns=now,
                    finished_ns=now,
                ),
                "skipped",
            )
            self._advance()
        await self._save()

    async def _finish(self) -> None:
        if self.state.skipped:
            await self._end(
                RunStatus.FAILED,
                f"finished without {', '.join(self.state.skipped)}: not every postcondition was checked",
            )
        else:
            await self._end(RunStatus.COMPLETE, "")

    async def _end(self, status: RunStatus, error: str) -> None:
        self.state.status = status
        self.state.error = error
        self.state.finished_ns = time.time_ns()
        await self._save()

    async def _write(self, trace: StepTrace, outcome: StepOutcome) -> None:
        trace.outcome = outcome
        trace.finished_ns = time.time_ns()
        self.state.traces += 1
        await self._store.add_trace(self.state, trace)
        self._on_change(self.state, trace)

    async def _save(self) -> None:
        self.state.updated_ns = time.time_ns()
        self.state.commands = self._issued_before + self._desktop.issued
        await self._store.save(self.state)
        self._on_change(self.state, None)


def _ms(seconds: float) -> int:
    return int(seconds * _MS_PER_S)


def _window_of(step: Step) -> WindowTarget:
    if step.window is not None:
        return step.window
    if isinstance(step.target, ElementTarget):
        return step.target.window
    raise StepFailedError(f"step {step.id!r} names no window", transient=False)


def _extract(pattern: str, text: str) -> str:
    """What a read keeps: the pattern's first group (or its whole match) in ``text``; all of ``text``
    without a pattern. StepFailedError when the pattern is not there (nothing to carry on with)."""
    if not pattern:
        return text
    match = re2.search(pattern, text)
    if match is None:
        raise StepFailedError(f"the value read does not hold {pattern!r}: {text[:200]!r}", transient=True)
    return str(match.group(1) if match.re.groups else match.group(0))


def _matched(pattern: str, text: str) -> str | None:
    """What ``pattern`` finds in ``text``: its first group, as the agent reports it, else the match."""
    match = re2.search(pattern, text)
    if match is None:
        return None
    return str(match.group(1) if match.re.groups else match.group(0))


def _describe(check: CheckTrace) -> str:
    detail = f"{check.kind} did not hold"
    if check.expected:
        detail += f" (expected {check.expected[:200]!r}, read {check.actual[:200]!r} via {check.via})"
    if check.detail:
        detail += f": {check.detail[:300]}"
    return detail
