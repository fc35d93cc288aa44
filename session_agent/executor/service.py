"""The executor: runs the cloud's commands on the desktop, each at most once, and records each in the spool.

Commands come from the sender's event loop (``submit``) and are taken in on one intake thread, in the
order they were delivered:

* A ``CancelCommand`` acts at once: a queued target is dropped (its result: CANCELLED), a running one is
  told to stop at its next step, an unknown one is recorded as cancelled so that it never runs if it
  arrives later.
* A command whose id the spool knows (taken up or answered before), or that is queued or running, is a
  repeated delivery (deliveries are at-least-once): it is dropped, and the result already in the
  spool (or still to come) answers it.
* Past its ``deadline_unix_nano``: EXPIRED. An action outside the allow-list, or one this agent cannot
  run (workflow actions without an X display): REFUSED. A full queue: REFUSED. Nothing is done.
* Otherwise it waits in a bounded FIFO queue.

One worker thread runs the queue one command at a time (a desktop has one keyboard and one pointer).
Before acting it commits ``CommandStarted`` to the spool together with the command id; after, the
``CommandResult`` (status, times, what the action observed, error). Each action runs on a thread of
its own with a time budget (``action_timeout_s``; a WaitFor's own timeout, at most ``wait_max_s``);
a handler checks the budget and the stop signal between its steps, and one that overruns its budget
by ``JOIN_GRACE_S`` is reported FAILED and left behind, told to stop. A command started and never
finished (the agent died) is answered INTERRUPTED at the next start (``recover``) and never run again.
The command's secret lives in memory only; results are scrubbed of it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from opentelemetry import metrics

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.config import ACTION_WAIT_FOR, AgentSettings
from session_agent.errors import (
    ActionFailedError,
    ActionRefusedError,
    CommandCancelledError,
    SpoolError,
)
from session_agent.executor.protocol import (
    CANCEL,
    NOTICE,
    ActionContext,
    Handler,
    Outcome,
    Status,
    action_of,
    describe,
    result_event,
    started_event,
    valid_command_id,
)
from session_agent.spool import Spool

logger = logging.getLogger(__name__)

R = pb.CommandResult
JOIN_GRACE_S = 2.0
STOP_JOIN_S = 5.0
# How long a WaitFor may look once more after its timeout (a last element search).
_WAIT_SLACK_S = 5.0


@dataclass
class _Item:
    command: pb.Command
    action: str
    received_ns: int
    context: ActionContext


class Executor:
    """Runs commands; see the module docstring. ``notify`` (thread-safe) wakes the sender."""

    def __init__(
        self,
        settings: AgentSettings,
        spool: Spool,
        handlers: Mapping[str, Handler],
        *,
        notify: Callable[[], None] = lambda: None,
        meter: metrics.Meter | None = None,
        on_stop: Sequence[Callable[[], None]] = (),
    ) -> None:
        self._settings = settings
        self._on_stop = list(on_stop)
        self._spool = spool
        self._handlers = dict(handlers)
        self._allowed = settings.executable_actions
        self._notify = notify
        self._lock = threading.Condition()
        self._queue: deque[_Item] = deque()
        self._running: _Item | None = None
        self._stopping = False
        self._intake_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="command-intake")
        self._worker: threading.Thread | None = None
        meter = meter or metrics.get_meter(__name__)
        self._commands = meter.create_counter(
            "shadowdesk.agent.commands",
            unit="{command}",
            description="commands answered, by action and status",
        )
        self._duration = meter.create_histogram(
            "shadowdesk.agent.command_duration",
            unit="s",
            description="time from start to result of a command",
        )
        self.duplicates = 0

    @property
    def capabilities(self) -> list[str]:
        """What Hello advertises: ``exec:<action>`` for every action this agent runs."""
        return [f"exec:{action}" for action in sorted(self._allowed | {NOTICE, CANCEL})]

    def start(self) -> int:
        """Answer the commands a previous run left unfinished (INTERRUPTED), then start the worker;
        the number of those commands."""
        interrupted = 0
        for started in self._spool.unfinished_commands():
            now = time.time_ns()
            event = result_event(
                started.command_id,
                R.STATUS_INTERRUPTED,
                received_ns=started.received_ns,
                started_ns=started.started_ns,
                finished_ns=now,
                error="the agent stopped while the command ran; not run again",
            )
            if self._spool.finish_command(started.command_id, deadline_ns=0, event=event) is not None:
                interrupted += 1
                logger.warning(
                    "command %s was interrupted by an agent stop; not run again", started.command_id
                )
        if interrupted:
            self._notify()
        self._worker = threading.Thread(target=self._work, name="command-worker", daemon=True)
        self._worker.start()
        return interrupted

    def stop(self) -> None:
        """Stop taking commands; a running one is told to stop and answered INTERRUPTED if it stops in
        time (else at the next start). Queued ones are dropped: the cloud delivers them again."""
        with self._lock:
            self._stopping = True
            self._queue.clear()
            if self._running is not None:
                self._running.context.halt("interrupted")
            self._lock.notify_all()
        self._intake_pool.shutdown(wait=True, cancel_futures=True)
        if self._worker is not None:
            self._worker.join(STOP_JOIN_S)
            if self._worker.is_alive():
                logger.warning("command worker did not stop within %.0fs", STOP_JOIN_S)
        for close in self._on_stop:
            close()

    async def submit(self, command: pb.Command) -> None:
        """Take in a command delivered by the cloud (called on the sender's event loop)."""
        received_ns = time.time_ns()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._intake_pool, self._intake, command, received_ns)
        except RuntimeError:  # the pool is shut down: the agent is stopping
            logger.info(
                "command %s arrived while the agent stops; the cloud delivers it again", describe(command)
            )

    def _intake(self, command: pb.Command, received_ns: int) -> None:
        try:
            self._take_in(command, received_ns)
        except SpoolError:
            logger.exception("cannot record command %s; the cloud delivers it again", describe(command))

    def _take_in(self, command: pb.Command, received_ns: int) -> None:
        command_id = command.command_id
        action = action_of(command)
        if not valid_command_id(command_id):
            logger.warning(
                "command %s ignored: its id is not 1-128 characters of [A-Za-z0-9._-]", describe(command)
            )
            return
        with self._lock:
            pending = self._running, *self._queue
            if any(item is not None and item.command.command_id == command_id for item in pending):
                self.duplicates += 1
                return
        if self._spool.knows_command(command_id):
            self.duplicates += 1
            logger.debug("command %s delivered again; it ran or was answered already", command_id)
            return
        if action == CANCEL:
            self._cancel(command, received_ns)
            return
        deadline_ns = command.deadline_unix_nano
        if action is None:
            self._answer(command, "unknown", R.STATUS_REFUSED, received_ns, error="unknown command kind")
        elif deadline_ns and time.time_ns() >= deadline_ns:
            self._answer(command, action, R.STATUS_EXPIRED, received_ns, error="past its deadline on arrival")
        elif action != NOTICE and action not in self._allowed:
            error = f"action {action} is not allowed on this desktop"
            self._answer(command, action, R.STATUS_REFUSED, received_ns, error=error)
        else:
            item = _Item(command, action, received_ns, ActionContext(command_id, 0.0, secret=command.secret))
            with self._lock:
                if not self._stopping and len(self._queue) < self._settings.command_queue_max:
                    self._queue.append(item)
                    self._lock.notify_all()
                    return
            error = f"the executor queue is full ({self._settings.command_queue_max} commands)"
            self._answer(command, action, R.STATUS_REFUSED, received_ns, error=error)

    def _cancel(self, command: pb.Command, received_ns: int) -> None:
        target = command.cancel.command_id
        with self._lock:
            queued = next((item for item in self._queue if item.command.command_id == target), None)
            if queued is not None:
                self._queue.remove(queued)
            running = self._running is not None and self._running.command.command_id == target
            if self._running is not None and running:
                self._running.context.halt("cancelled")
        if queued is not None:
            state = "queued"
            self._answer(
                queued.command, queued.action, R.STATUS_CANCELLED, queued.received_ns, error="cancelled"
            )
        elif running:
            state = "running"  # its own result says CANCELLED once it stopped (or how it ended first)
        elif not valid_command_id(target):
            state = "invalid"
        elif self._spool.knows_command(target):
            state = "finished"
        else:
            # Not delivered yet (or lost): recorded as cancelled, so that a later delivery never runs it.
            state = "unknown"
            cancelled = pb.Command(command_id=target)
            self._answer(
                cancelled, "unknown", R.STATUS_CANCELLED, received_ns, error="cancelled before delivery"
            )
        observed = {"target_state": state}
        if state != "invalid":
            observed["command_id"] = target
        if state in ("finished", "invalid"):
            error = "already finished" if state == "finished" else "not a command id"
            self._answer(command, CANCEL, R.STATUS_FAILED, received_ns, observed, error=error)
        else:
            self._answer(command, CANCEL, R.STATUS_SUCCEEDED, received_ns, observed)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                item = self._running = self._queue.popleft()
            try:
                self._execute(item)
            except SpoolError:
                logger.exception("cannot record command %s", describe(item.command))
            except Exception:
                logger.exception("command %s: the executor failed", describe(item.command))
            finally:
                with self._lock:
                    self._running = None

    def _execute(self, item: _Item) -> None:
        command, context = item.command, item.context
        if context.stop.is_set():
            if context.stop_reason == "cancelled":
                self._answer(command, item.action, R.STATUS_CANCELLED, item.received_ns, error="cancelled")
            return  # the agent is stopping: not started, so the cloud delivers it again
        deadline_ns = command.deadline_unix_nano
        if deadline_ns and time.time_ns() >= deadline_ns:
            self._answer(command, item.action, R.STATUS_EXPIRED, item.received_ns, error="past its deadline")
            return
        budget_s = self._budget_s(command, item.action)
        started_ns = time.time_ns()
        context.deadline = time.monotonic() + budget_s
        started = started_event(command.command_id, started_ns)
        if (
            self._spool.begin_command(
                command.command_id, received_ns=item.received_ns, deadline_ns=deadline_ns, event=started
            )
            is None
        ):
            self.duplicates += 1
            return
        self._notify()
        logger.info("command %s started", describe(command))
        status, outcome, error = self._run(item, budget_s)
        self._answer(
            command,
            item.action,
            status,
            item.received_ns,
            outcome.observed,
            error,
            started_ns,
            outcome.frame_seq,
        )

    def _run(self, item: _Item, budget_s: float) -> tuple[Status, Outcome, str]:
        """Run the handler on a thread of its own, bounded by ``budget_s``."""
        handler = self._handlers.get(item.action)
        if handler is None:
            return R.STATUS_REFUSED, Outcome(), f"action {item.action} is not supported by this agent"
        box: list[Outcome | BaseException] = []

        def target() -> None:
            try:
                box.append(handler(item.command, item.context))
            except BaseException as exc:  # reported as the command's result
                box.append(exc)

        thread = threading.Thread(target=target, name=f"action-{item.action}", daemon=True)
        thread.start()
        thread.join(budget_s + JOIN_GRACE_S)
        if not box:
            item.context.halt("interrupted")
            logger.error(
                "command %s did not finish within %.0fs; abandoned", describe(item.command), budget_s
            )
            return R.STATUS_FAILED, Outcome(), f"the action did not finish within {budget_s:.0f}s"
        result = box[0]
        if isinstance(result, Outcome):
            return R.STATUS_SUCCEEDED, result, ""
        observed = getattr(result, "observed", {})
        if isinstance(result, CommandCancelledError):
            status = R.STATUS_CANCELLED if item.context.stop_reason == "cancelled" else R.STATUS_INTERRUPTED
            return status, Outcome(observed), str(result)
        if isinstance(result, ActionRefusedError):
            return R.STATUS_REFUSED, Outcome(observed), str(result)
        if isinstance(result, ActionFailedError):
            return R.STATUS_FAILED, Outcome(observed), str(result)
        # Not the handler's own error: its message could quote what was being typed, so only its type.
        logger.error(
            "command %s failed unexpectedly: %s",
            describe(item.command),
            type(result).__name__,
            exc_info=None if item.context.secret else result,
        )
        return R.STATUS_FAILED, Outcome(), f"internal error ({type(result).__name__})"

    def _budget_s(self, command: pb.Command, action: str) -> float:
        settings = self._settings
        if action == ACTION_WAIT_FOR:
            wait_s = min(command.workflow_step.wait_for.timeout_ms / 1000, settings.wait_max_s)
            return wait_s + _WAIT_SLACK_S
        return settings.action_timeout_s

    def _answer(
        self,
        command: pb.Command,
        action: str,
        status: Status,
        received_ns: int,
        observed: dict[str, str] | None = None,
        error: str = "",
        started_ns: int = 0,
        frame_seq: int = 0,
    ) -> None:
        finished_ns = time.time_ns()
        event = result_event(
            command.command_id,
            status,
            received_ns=received_ns,
            started_ns=started_ns,
            finished_ns=finished_ns,
            observed=observed,
            error=error,
            frame_seq=frame_seq,
            secret=command.secret,
        )
        deadline_ns = command.deadline_unix_nano
        if self._spool.finish_command(command.command_id, deadline_ns=deadline_ns, event=event) is None:
            return
        self._notify()
        status_name = R.Status.Name(status).removeprefix("STATUS_").lower()
        self._commands.add(1, {"action": action, "status": status_name})
        if started_ns:
            self._duration.record((finished_ns - started_ns) / 1e9, {"action": action})
        log = logger.info if status == R.STATUS_SUCCEEDED else logger.warning
        took_ms = (finished_ns - (started_ns or received_ns)) / 1e6
        error = event.command_result.error  # scrubbed of the secret
        log(
            "command %s %s in %.0f ms%s",
            describe(command),
            status_name,
            took_ms,
            f": {error}" if error else "",
        )
