"""What the runner keeps and shows of a run: its durable state, its per-step traces, and the API's shapes.

A run is stored in its user's space (``runner_store.py``): ``RunState`` (where it stands: the step,
the try, the phase inside the step, the values read so far, the question it waits on) is written after
every phase of every step, so a restarted server resumes it from there; each finished try of a step
writes one ``StepTrace``. Secrets (the values of ``secret`` parameters) are never in either: they live
in the server's memory while the run does.

Status: ``running`` → ``waiting`` (a question for the user: confirm a sensitive step, or what to do
after a halt) → ``running`` ... → one final status: ``complete`` (every step ran and every postcondition,
``final_checks`` included, held), ``failed`` (it finished with a step skipped, or could not go on),
``aborted`` (the user said so, or rejected a sensitive step) or ``cancelled``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

RUN_ID_PATTERN = r"^[0-9a-f]{32}$"


class RunStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETE = "complete"
    FAILED = "failed"
    ABORTED = "aborted"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self not in (RunStatus.RUNNING, RunStatus.WAITING)


class Decision(StrEnum):
    RETRY = "retry"  # try the step again, with a fresh budget of retries
    SKIP = "skip"  # go on without it: the run can no longer end complete
    TAKE_OVER = "take_over"  # the user did it by hand: its postconditions are checked, then on
    ABORT = "abort"
    CONFIRM = "confirm"  # a sensitive step may act
    REJECT = "reject"  # a sensitive step may not: the run is aborted


HALT_OPTIONS = (Decision.RETRY, Decision.SKIP, Decision.TAKE_OVER, Decision.ABORT)
CONFIRM_OPTIONS = (Decision.CONFIRM, Decision.REJECT)


class Question(BaseModel):
    """What the run asks the user; it waits, durably, until answered."""

    question_id: str
    kind: Literal["halt", "confirm"]
    step_id: str
    row: int | None = None
    reason: str
    options: list[Decision]
    asked_ns: int


Phase = Literal["start", "acting", "checking"]


class Cursor(BaseModel):
    """Where a run stands. ``entry`` indexes the program's steps (== their count: the final checks);
    inside a loop, ``row`` is the row and ``body`` the step of the loop's body."""

    entry: int = 0
    row: int | None = None
    body: int = 0
    # start: wait for the target (and ask, if sensitive); acting: the action may have been issued;
    # checking: the action is done, its postconditions are read back.
    phase: Phase = "start"
    attempt: int = 0  # grows with every try: part of the action's idempotency key
    tries: int = 0  # tries spent of the step's ``retries``
    confirmed: bool = False  # a sensitive step the user confirmed
    taken_over: bool = False  # the user did the step by hand


class RunState(BaseModel):
    """A run as stored: enough to resume it after a restart (never a secret)."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    user_id: str
    session_id: str
    macro_id: str | None = None
    program: dict[str, Any]  # the Program document it runs, as given at start
    parameters: dict[str, str] = Field(default_factory=dict)  # secret parameters left out
    secret_parameters: list[str] = Field(default_factory=list)
    status: RunStatus = RunStatus.RUNNING
    cursor: Cursor = Field(default_factory=Cursor)
    bindings: dict[str, str] = Field(default_factory=dict)
    question: Question | None = None
    skipped: list[str] = Field(default_factory=list)
    error: str = ""
    created_ns: int
    updated_ns: int
    finished_ns: int = 0
    generation: int = 0  # times the run was resumed after a restart
    traces: int = 0  # step traces written
    commands: int = 0  # commands issued


class FrameRef(BaseModel):
    seq: int
    key: str = ""  # in the user's space: GET /v1/frames/{session_id}/{name}


class CommandTrace(BaseModel):
    purpose: str  # wait, act, check:<n>, frame:before, frame:after, ocr
    command_id: str
    action: str
    status: str
    ms: float
    observed: dict[str, str] = Field(default_factory=dict)
    error: str = ""


class CheckTrace(BaseModel):
    kind: str
    held: bool
    via: Literal["accessibility", "ocr", "file", "none"] = "accessibility"
    expected: str = ""
    actual: str = ""
    detail: str = ""


StepOutcome = Literal["ok", "failed", "skipped", "taken_over", "refused_by_user"]


class StepTrace(BaseModel):
    """One try of one step (per loop row): how its target was found, what it did, what was read back."""

    index: int
    step_id: str
    name: str = ""
    action: str
    row: int | None = None
    attempt: int
    outcome: StepOutcome
    found_by: str = ""
    started_ns: int
    finished_ns: int
    wait_ms: float = 0.0
    act_ms: float = 0.0
    check_ms: float = 0.0
    frame_before: FrameRef | None = None
    frame_after: FrameRef | None = None
    checks: list[CheckTrace] = Field(default_factory=list)
    commands: list[CommandTrace] = Field(default_factory=list)
    error: str = ""


# --- the API's shapes ---------------------------------------------------------------------------


class StartRunRequest(BaseModel):
    """``POST /v1/workflows/runs``: a stored macro by id, or a program document, on one of your sessions."""

    model_config = ConfigDict(extra="forbid")

    macro_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    program: dict[str, Any] | None = Field(default=None, description="A program document (its JSON form).")
    session_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    parameters: dict[str, str] = Field(default_factory=dict, max_length=64)
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict, max_length=16, description="Values of secret parameters: memory only."
    )


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Decision
    question_id: str | None = Field(
        default=None, max_length=64, description="The question answered; a stale answer is refused."
    )


class RunSummary(BaseModel):
    run_id: str
    session_id: str
    macro_id: str | None
    name: str
    status: RunStatus
    step_id: str | None = Field(description="The step it is at (null once finished).")
    question: Question | None
    skipped: list[str]
    error: str
    created_ns: int
    updated_ns: int
    finished_ns: int
    traces: int
    commands: int


class RunView(RunSummary):
    bindings: dict[str, str]
    steps: list[StepTrace]


class RunList(BaseModel):
    runs: list[RunSummary]
