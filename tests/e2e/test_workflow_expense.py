"""The 报销 expense claim, recorded once by demonstration and replayed on new invoices, end to end.

The desk (``harness.expense_desk``): ``shadowdesk server`` over real MinIO, ``shadowdesk agent``
(recorder, executor, accessibility sensor) on an Xvfb desktop with a session bus and AT-SPI, the expense
portal (its own SQLite) in a Chromium with ``--force-renderer-accessibility``, the invoice PDF in evince,
the cost centre in mousepad.

1. Recording: ``POST /v1/workflows/recordings``, then a person's mouse and keyboard (xdotool): look at
   the invoice in evince, sign in, fill page 1 with what the invoice says, copy the cost centre from
   mousepad (ctrl+Home, shift+End, ctrl+c) and paste it on page 2, pick the category from the drop-down, next,
   submit, see the claim number; stop. The compiled macro's parameters and bindings are asserted.
2. Replay: the user lists the drop-down's other categories in the macro (the recording saw one; a new
   version through ``PUT /v1/workflows/macros/{id}``), then ``POST /v1/workflows/runs`` of that macro on
   10 new invoices (other values, every layout, both languages), each in a fresh signed-out
   Chromium, the invoice's values as parameters, the password as a secret, the cost centre read again
   from mousepad; the sensitive submit is confirmed through the answer API. Every claim in the portal's
   database is exactly the invoice's, filed exactly once; no model call is made.

3. Faults (``harness.expense_faults``), each on a new invoice with the same recorded macro, the portal's
   fault switched on through ``PUT /admin/faults`` and off again: a field the portal silently drops
   (the run halts on the confirmation page's read-back and is never complete), a 500 page on the
   submit (the run halts, never submits again by itself; Back and retry file the claim once), pages
   seconds slow (the run waits for its targets and completes), a modal notice (the run halts on the
   inert form; closed, retry completes), the agent killed mid-run and at the submit and started again
   with its spool (the run resumes, halts on the interrupted command, and the claim is filed once).

``bench/workflow_bench.py`` replays 20 or more.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cloud_infer.workflows.program import from_yaml, to_yaml
from demo_apps.expense_portal import Faults
from demo_apps.invoices import make_invoice
from harness.expense_desk import (
    COST_CENTRE,
    FIELD_OF,
    OPTION_TEXT,
    PORTAL_PASSWORD,
    ExpenseDesk,
    answer,
    claim_number_binding,
    expense_desk,
    record_claim,
    show,
    start_claim_run,
    steps_of,
    wait_run,
)
from harness.expense_faults import (
    ClaimRun,
    agent_killed,
    dropped_field,
    error_on_submit,
    modal_notice,
    slow_portal,
)
from harness.minio import MinioServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
log = logging.getLogger(__name__)

USER = f"mei-{uuid.uuid4().hex[:8]}"
SESSION = "mei-desk-1"
RECORDED = make_invoice(101, "en", "classic")
# New invoices: other values, every layout, both languages.
REPLAYED = [
    make_invoice(201, "en", "modern"),
    make_invoice(202, "zh", "fapiao"),
    make_invoice(203, "zh", "classic"),
    make_invoice(204, "en", "fapiao"),
    make_invoice(205, "zh", "modern"),
    make_invoice(206, "en", "classic"),
    make_invoice(207, "zh", "fapiao"),
    make_invoice(208, "en", "modern"),
    make_invoice(209, "zh", "classic"),
    make_invoice(210, "en", "fapiao"),
]


@pytest.fixture(scope="module")
def desk(minio_server: MinioServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExpenseDesk]:
    with expense_desk(minio_server, tmp_path_factory.mktemp("expense"), USER, SESSION) as running:
        yield running


@pytest.fixture(scope="module")
def macro(desk: ExpenseDesk) -> dict[str, Any]:
    """Record the claim once, as a person does it; the stopped recording's compiled macro."""
    return record_claim(desk, RECORDED)


@pytest.fixture(scope="module")
def every_category(desk: ExpenseDesk, macro: dict[str, Any]) -> dict[str, Any]:
    """The macro once the user listed the drop-down's other categories (the recording saw one): a new
    version, through the editor's PUT, as the compiled document invites."""
    program = from_yaml(macro["document"])
    parameters = [
        p.model_copy(update={"choices": list(OPTION_TEXT.values())}) if p.type == "choice" else p
        for p in program.parameters
    ]
    program = program.model_copy(update={"parameters": parameters})
    with desk.api() as api:
        edited = api.put(
            f"/v1/workflows/macros/{macro['macro_id']}",
            content=to_yaml(program).encode(),
            headers={"content-type": "application/yaml"},
        )
    assert edited.status_code == 200 and edited.json()["version"] == 2, edited.text
    return macro


def test_the_recorded_claim_compiles_to_parameters_bindings_and_a_claim_number_check(
    macro: dict[str, Any],
) -> None:
    program = macro["program"]
    shown = macro["document"]
    steps = {step["id"]: step for step in steps_of(program)}
    params = {p["name"]: p for p in program.get("parameters", [])}
    # What the person typed: parameters named after the fields' labels, typed, the values as defaults.
    by_label = {p["label"].split(" / ")[0]: p for p in params.values()}
    assert set(by_label) == {"User name", "Password", *FIELD_OF}, shown
    for label, field in FIELD_OF.items():
        assert by_label[label].get("default") == field(RECORDED), (label, shown)
    assert [by_label[k]["type"] for k in ("Invoice date", "Amount (tax included)", "Tax", "Category")] == [
        "date",
        "money",
        "money",
        "choice",
    ], shown
    # The password: a secret without a value; its text (or its length in dots) is nowhere.
    assert by_label["Password"]["type"] == "secret" and "default" not in by_label["Password"], shown
    assert PORTAL_PASSWORD not in shown and "•" not in shown, shown
    # Every click names what a person clicked: sign in, next twice, submit.
    clicks = [s["target"]["name"] for s in steps.values() if s.get("action") == "click"]
    assert clicks == ["Sign in / 登录", "Next / 下一步", "Next / 下一步", "Submit claim / 提交报销"], shown
    # The copied cost centre: read fresh from mousepad each run, typed from that binding.
    reads = [s for s in steps.values() if s.get("action") == "read"]
    assert [r["target"]["window"]["app_id"] for r in reads] == ["mousepad"], shown
    (read,) = reads
    typed_from = [s for s in steps.values() if s.get("input") == {"binding": read["save_as"]}]
    assert len(typed_from) == 1 and typed_from[0]["target"]["id_attribute"] == "cost_centre", shown
    assert "Cost centre" not in {p["label"].split(" / ")[0] for p in params.values()}, shown
    # The drop-down is a select; the submit sensitive and checked by the claim number it shows.
    selects = [s for s in steps.values() if s.get("action") == "select"]
    assert len(selects) == 1 and selects[0]["input"] == {"param": by_label["Category"]["name"]}, shown
    sensitive = [s for s in steps.values() if s.get("sensitive")]
    assert len(sensitive) == 1 and "submit" in sensitive[0]["id"], shown
    (claim_check,) = [c for c in sensitive[0].get("checks", []) if c.get("save_as")]
    assert claim_check["kind"] == "text_in_window", shown
    final = program.get("final_checks", [])
    assert final and final[0]["equals"] == {"binding": claim_check["save_as"]}, shown
    # The confirmation page showed every value back (as stored: the amounts and date normalised): each is
    # read back after the submit, money and the date as the amount and the day they are.
    read_back = {
        next(iter(c["equals"].values())): c.get("compare_as", "text")
        for c in sensitive[0]["checks"]
        if c.get("equals")
    }
    kinds = {"Invoice date": "date", "Amount (tax included)": "money", "Tax": "money"}
    assert read_back == {
        **{by_label[label]["name"]: kinds.get(label, "text") for label in ("User name", *FIELD_OF)},
        read["save_as"]: "text",
    }, shown


def test_the_macro_files_each_new_invoice_exactly_once_and_exactly_right(
    desk: ExpenseDesk, every_category: dict[str, Any]
) -> None:
    macro = every_category
    timings: list[float] = []
    with desk.api() as api:
        for index, invoice in enumerate(REPLAYED):
            before = desk.claims()
            desk.open_invoice(invoice, f"invoice-{index}")
            desk.open_portal()
            began = time.monotonic()
            run_id = start_claim_run(desk, api, macro, invoice)
            asked = wait_run(desk, api, run_id, "waiting", "failed", "aborted", "complete")
            assert asked["status"] == "waiting" and asked["question"]["kind"] == "confirm", show(asked)
            assert desk.claims() == before, "nothing is filed before the user confirms"
            answer(api, asked, "confirm")
            run = wait_run(desk, api, run_id, "complete", "failed", "aborted", "waiting")
            assert run["status"] == "complete", show(run)
            timings.append(time.monotonic() - began)
            after = desk.claims()
            new = [c for c in after if c.number not in {b.number for b in before}]
            assert len(new) == 1, [c.number for c in after]
            assert new[0].fields() == {**invoice.expected_claim(), "cost_centre": COST_CENTRE}, show(run)
            assert run["bindings"].get(claim_number_binding(macro["program"])) == new[0].number, show(run)
        usage = api.get("/v1/llm/usage").json()
        assert (usage["requests"], usage["embedded_texts"]) == (0, 0), usage
    numbers = [c.number for c in desk.claims()]
    assert len(numbers) == len(set(numbers)) == 1 + len(REPLAYED)
    log.info(
        "replay seconds per invoice (start to complete, confirm included): %s", [round(t, 1) for t in timings]
    )


# --- faults: each on a new invoice, the recorded macro, the portal healthy again afterwards -----------


def submit_step(run: ClaimRun) -> list[dict[str, Any]]:
    """The tries of the run's submit step."""
    return [step for step in run.run["steps"] if step["step_id"].startswith("click_submit")]


def healthy(desk: ExpenseDesk) -> bool:
    return desk.portal.config.faults == Faults()


def test_a_field_the_portal_silently_drops_halts_the_run_on_the_confirmation_never_complete(
    desk: ExpenseDesk, every_category: dict[str, Any]
) -> None:
    invoice = make_invoice(301, "en", "modern")
    with desk.api() as api:
        result = dropped_field(desk, api, every_category, invoice, "tax")
    shown = show(result.run)
    assert result.run["status"] == "aborted" and not result.complete and healthy(desk), shown
    # The portal filed the claim once, without its tax: the submit's read-back of the confirmation
    # page is what sees it, and the run halts there (a submit is never repeated by itself).
    (claim,) = result.filed
    assert claim.fields() == {**result.expected, "tax": ""}, claim
    (halt,) = result.halts
    (submit,) = submit_step(result)
    assert halt["step_id"] == submit["step_id"], shown
    assert f"expected {FIELD_OF['Tax'](invoice)!r}" in halt["reason"], halt["reason"]
    checks = submit["checks"]
    assert [c["held"] for c in checks[:-1]] == [True] * (len(checks) - 1) and not checks[-1]["held"], shown
    assert checks[0]["actual"] == claim.number, "the claim number was read before the tax was missed"


def test_an_error_page_on_the_submit_halts_and_back_then_retry_files_the_claim_once(
    desk: ExpenseDesk, every_category: dict[str, Any]
) -> None:
    with desk.api() as api:
        result = error_on_submit(desk, api, every_category, make_invoice(302, "zh", "modern"))
    shown = show(result.run)
    assert result.complete and result.filed_right and healthy(desk), shown
    (halt,) = result.halts
    failed, retried = submit_step(result)
    assert halt["step_id"] == failed["step_id"] and failed["outcome"] == "failed", shown
    assert not failed["checks"][0]["held"] and len(failed["checks"]) == 1, "the claim number never showed"
    assert retried["outcome"] == "ok" and retried["checks"][0]["actual"] == result.filed[0].number, shown


def test_a_slow_portal_is_waited_for_and_the_run_completes(
    desk: ExpenseDesk, every_category: dict[str, Any]
) -> None:
    with desk.api() as api:
        result = slow_portal(desk, api, every_category, make_invoice(303, "en", "fapiao"), seconds=2.0)
    shown = show(result.run)
    assert result.complete and result.filed_right and healthy(desk), shown
    assert set(result.tries) == {"ok"} and not result.halts, "waited, never failed: " + shown
    # Signing in answers after three slow pages: the first field of the form was waited for.
    vendor = next(step for step in result.run["steps"] if step["step_id"] == "type_vendor")
    assert vendor["wait_ms"] >= 4000, shown


def test_a_modal_notice_halts_the_run_and_once_closed_retry_completes(
    desk: ExpenseDesk, every_category: dict[str, Any]
) -> None:
    with desk.api() as api:
        result = modal_notice(desk, api, every_category, make_invoice(304, "zh", "fapiao"))
    shown = show(result.run)
    assert result.complete and result.filed_right and healthy(desk), shown
    (halt,) = result.halts
    assert halt["step_id"] == "type_vendor" and "element_exists not met" in halt["reason"], shown
    # Three tries on the inert form (the first and two retries), then the one after the person's retry.
    typed = [step["outcome"] for step in result.run["steps"] if step["step_id"] == "type_vendor"]
    assert typed == ["failed", "failed", "failed", "ok"], shown


def test_the_agent_killed_mid_run_and_at_the_submit_resumes_and_files_the_claim_once(
    desk: ExpenseDesk, every_category: dict[str, Any]
) -> None:
    with desk.api() as api:
        result = agent_killed(desk, api, every_category, make_invoice(305, "en", "classic"))
        usage = api.get("/v1/llm/usage").json()
    shown = show(result.run)
    assert result.complete and result.filed_right and healthy(desk), shown
    assert desk.agent.running, desk.logs()
    # At the submit the agent died while reading the claim number back: the run halted, and the
    # person took over once they saw the claim; the submit was clicked once.
    halt = result.halts[-1]
    assert "submit" in halt["step_id"] and "interrupted" in halt["reason"], shown
    clicks = [c for step in submit_step(result) for c in step["commands"] if c["purpose"] == "act"]
    assert len(clicks) == 1 and submit_step(result)[-1]["outcome"] == "taken_over", shown
    numbers = [claim.number for claim in desk.claims()]
    assert len(numbers) == len(set(numbers)), numbers
    assert (usage["requests"], usage["embedded_texts"]) == (0, 0), usage
