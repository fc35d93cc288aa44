"""One run of a recorded macro on the expense desk, followed to its end as the person at the desk answers.

Shared by the 报销 claim (``harness.expense_faults``) and the 提报 weekly report
(``harness.weekly_report``), and through them by the workflow e2e tests and ``bench/workflow_bench.py``:
:func:`follow_run` polls ``/v1/workflows/runs/{id}``, hands each question to a :data:`Person` and
answers it, and fills a :class:`MacroRun` (its last view, its halts, its wall time without the time
its questions waited). What the portal filed meanwhile, and whether that is exactly right, is each
macro's own subclass.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import httpx

from harness.expense_desk import FINAL, ExpenseDesk, answer, wait_run

# The person at the desk, asked a question: what they do before answering, then their decision.
Person = Callable[[dict[str, Any]], str]


class Numbered(Protocol):
    @property
    def number(self) -> str: ...


FiledT = TypeVar("FiledT", bound=Numbered)


@dataclass
class MacroRun(ABC, Generic[FiledT]):
    """One run of a macro: how it ended, what it asked, what the portal filed meanwhile."""

    scenario: str
    run: dict[str, Any] = field(default_factory=dict, kw_only=True)  # its last view: bindings, every try
    halts: list[dict[str, Any]] = field(default_factory=list, kw_only=True)  # the halt questions, in order
    filed: list[FiledT] = field(default_factory=list, kw_only=True)
    wall_s: float = field(default=0.0, kw_only=True)  # start to end, less the time questions waited

    @property
    @abstractmethod
    def case(self) -> str:
        """What the run was given, in a few words."""

    @property
    @abstractmethod
    def filed_right(self) -> bool:
        """The portal filed exactly one record, holding exactly what the run was given."""

    @property
    def complete(self) -> bool:
        return bool(self.run["status"] == "complete")

    @property
    def false_completion(self) -> bool:
        """Reported complete, but the portal does not hold exactly one right record."""
        return self.complete and not self.filed_right

    @property
    def tries(self) -> list[str]:
        """The outcome of each try of each step, as the run's trace has them."""
        return [step["outcome"] for step in self.run["steps"]]


class Filed(Generic[FiledT]):
    """What ``listing`` holds that it did not when this was made (by number)."""

    def __init__(self, listing: Callable[[], Sequence[FiledT]]) -> None:
        self._listing = listing
        self._before = {item.number for item in listing()}

    def __call__(self) -> list[FiledT]:
        return [item for item in self._listing() if item.number not in self._before]


def follow_run(
    desk: ExpenseDesk,
    api: httpx.Client,
    run_id: str,
    result: MacroRun[Any],
    person: Person,
    *,
    on_progress: Callable[[dict[str, Any]], None] = lambda run: None,
    after_answer: Callable[[str], None] = lambda decision: None,
) -> None:
    """Follow the run until it ends into ``result``: ``person`` answers each question (``after_answer``
    is what they do next), ``on_progress`` sees the run at every poll."""
    answered: set[str] = set()
    waited_ns = 0
    while True:
        run = wait_run(desk, api, run_id, "running", "waiting", *FINAL)
        on_progress(run)
        if run["status"] in FINAL:
            break
        question = run["question"]
        if run["status"] == "waiting" and question["question_id"] not in answered:
            answered.add(question["question_id"])
            if question["kind"] == "halt":
                result.halts.append(question)
            decision = person(run)
            waited_ns += time.time_ns() - question["asked_ns"]
            answer(api, run, decision)
            after_answer(decision)
        time.sleep(0.1)
    result.run = run
    result.wall_s = (run["finished_ns"] - run["created_ns"] - waited_ns) / 1e9


def confirm_or_abort(run: dict[str, Any]) -> str:
    """The person confirms the submit; a halt they cannot help with is aborted."""
    return "confirm" if run["question"]["kind"] == "confirm" else "abort"
