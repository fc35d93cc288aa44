"""Runs of the recorded 报销 macro on new invoices, healthy or against one of the portal's faults.

Shared by ``tests/e2e/test_workflow_expense.py`` (which asserts what each run must and must not do) and
``bench/workflow_bench.py`` (which counts them). Each run opens its invoice in evince and a fresh
signed-out Chromium, switches its fault on through the portal's ``PUT /admin/faults``, runs the macro
through ``/v1/workflows/runs`` and answers its questions as the person at the desk would; every fault
is switched off again whatever happens.

* no fault (``claim_run`` with ``confirm_or_abort``): the person confirms the submit; a halt is aborted
  (nobody is there to help).
* ``dropped_field``: the portal files the claim with one field silently emptied. The submit's checks
  read the confirmation page back and the run halts on the value it does not show; the person aborts.
* ``error_on_submit``: the submit's post answers 500 and files nothing. The claim number never shows:
  the run halts (a submit is never repeated by itself); the person goes Back to the review page and
  answers retry; the run submits again and completes.
* ``slow_portal``: every page answers seconds late; the run waits for each target and completes.
* ``modal_notice``: every form page opens a modal notice, which makes the form under it inert: the
  first field is never found and the run halts; the person closes the notice and answers retry.
* ``agent_killed``: the agent is killed (SIGKILL) while the run types, and again while the submit's
  claim number is read back (the portal slowed to make that moment seconds long), and started again
  each time with the same spool. A command the agent was in the middle of is reported interrupted and
  the run halts: the person answers retry while typing, and takes over once the claim shows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from demo_apps.expense_portal import Claim, Faults
from demo_apps.invoices import Invoice
from harness.expense_desk import COST_CENTRE, ExpenseDesk, entry, start_claim_run
from harness.macro_run import Filed, MacroRun, Person, confirm_or_abort, follow_run
from harness.processes import wait_until


@dataclass
class ClaimRun(MacroRun[Claim]):
    """One run of the macro on one invoice."""

    invoice: Invoice

    @property
    def case(self) -> str:
        return f"{self.invoice.language} {self.invoice.layout}"

    @property
    def expected(self) -> dict[str, str]:
        return {**self.invoice.expected_claim(), "cost_centre": COST_CENTRE}

    @property
    def filed_right(self) -> bool:
        """Exactly one claim filed, holding exactly the invoice's values."""
        return len(self.filed) == 1 and self.filed[0].fields() == self.expected


@contextlib.contextmanager
def faults(desk: ExpenseDesk, switched: Faults) -> Iterator[None]:
    """The portal with ``switched`` on, and healthy again afterwards whatever happened."""
    desk.portal.set_faults(switched)
    try:
        yield
    finally:
        desk.portal.set_faults(Faults())


def claim_run(
    desk: ExpenseDesk,
    api: httpx.Client,
    macro: dict[str, Any],
    invoice: Invoice,
    scenario: str,
    person: Person,
    *,
    on_progress: Callable[[dict[str, Any]], None] = lambda run: None,
    after_answer: Callable[[str], None] = lambda decision: None,
) -> ClaimRun:
    """Run the macro on ``invoice`` in a fresh Chromium until it ends: ``person`` answers each question
    (``after_answer`` is what they do next), ``on_progress`` sees the run at every poll."""
    filed = Filed(desk.claims)
    desk.open_invoice(invoice, f"{scenario}-{invoice.seed}")
    desk.open_portal()
    result = ClaimRun(scenario, invoice)
    run_id = start_claim_run(desk, api, macro, invoice)
    follow_run(desk, api, run_id, result, person, on_progress=on_progress, after_answer=after_answer)
    result.filed = filed()
    return result


def dropped_field(
    desk: ExpenseDesk, api: httpx.Client, macro: dict[str, Any], invoice: Invoice, name: str = "tax"
) -> ClaimRun:
    with faults(desk, Faults(drop_field=name)):
        return claim_run(desk, api, macro, invoice, "dropped_field", confirm_or_abort)


def error_on_submit(
    desk: ExpenseDesk, api: httpx.Client, macro: dict[str, Any], invoice: Invoice
) -> ClaimRun:
    went_back: list[str] = []

    def person(run: dict[str, Any]) -> str:
        question = run["question"]
        if question["kind"] == "confirm":
            desk.portal.set_faults(Faults(error=1))  # the submit the person confirms fails
            return "confirm"
        if not went_back and "submit" in question["step_id"]:
            # The error page: Back to the review page, where the run can submit again.
            desk.desktop.activate(desk.wait_page("Error"))
            desk.xdotool("key", "alt+Left")
            desk.wait_page("Review claim")
            went_back.append(question["step_id"])
            return "retry"
        return "abort"

    with faults(desk, Faults()):
        return claim_run(desk, api, macro, invoice, "error_on_submit", person)


def slow_portal(
    desk: ExpenseDesk, api: httpx.Client, macro: dict[str, Any], invoice: Invoice, seconds: float = 2.0
) -> ClaimRun:
    with faults(desk, Faults(slow_s=seconds)):
        return claim_run(desk, api, macro, invoice, "slow_portal", confirm_or_abort)


def modal_notice(desk: ExpenseDesk, api: httpx.Client, macro: dict[str, Any], invoice: Invoice) -> ClaimRun:
    closed: list[str] = []

    def person(run: dict[str, Any]) -> str:
        if run["question"]["kind"] == "halt" and not closed:
            desk.portal.set_faults(Faults())  # the notice was seen once; the next pages come without it
            desk.click(entry("OK / 确定", "push button"))
            closed.append(run["question"]["step_id"])
            return "retry"
        return confirm_or_abort(run)

    with faults(desk, Faults(modal=True)):
        return claim_run(desk, api, macro, invoice, "modal_notice", person)


def agent_killed(desk: ExpenseDesk, api: httpx.Client, macro: dict[str, Any], invoice: Invoice) -> ClaimRun:
    filed = Filed(desk.claims)
    kills: list[str] = []

    def restart_agent(when: str) -> None:
        desk.agent.kill()
        desk.agent.start()
        kills.append(when)

    def while_typing(run: dict[str, Any]) -> None:
        if not kills and any(s["step_id"] == "type_vendor" and s["outcome"] == "ok" for s in run["steps"]):
            restart_agent("typing")

    def person(run: dict[str, Any]) -> str:
        question = run["question"]
        if question["kind"] == "confirm":
            # The confirmation page then shows seconds after the claim is filed: the agent is killed
            # while the run waits to read it back.
            desk.portal.set_faults(Faults(slow_s=3.0))
            return "confirm"
        if "interrupted" not in question["reason"]:
            return "abort"
        if "submit" not in question["step_id"]:
            return "retry"  # typing a field again replaces what it holds
        (claim,) = filed()
        desk.portal.set_faults(Faults())
        desk.wait_page(f"Claim {claim.number} submitted")
        return "take_over"  # the person sees the claim went through: its checks read it back

    def after_answer(decision: str) -> None:
        if decision == "confirm":
            wait_until(filed, 30, "the confirmed claim to be filed")
            restart_agent("submit")

    with faults(desk, Faults()):
        result = claim_run(
            desk,
            api,
            macro,
            invoice,
            "agent_killed",
            person,
            on_progress=while_typing,
            after_answer=after_answer,
        )
    if kills != ["typing", "submit"]:
        raise AssertionError(f"the agent was killed {kills}, not while typing and at the submit")
    return result
