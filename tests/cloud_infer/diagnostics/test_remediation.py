"""Remediation over the real downlink: a dry run, a fix that runs at once and is verified, a risky one
that waits for a second admin, every step in the audit log; through the HTTP API, as admins use it.

The desktop is a test agent on a real gRPC ingest stream (``desk.py``): it reports metrics, receives the
notice and the remediation command, and answers with their results.
"""

from __future__ import annotations

import time

from cloud_infer.auth import issue_token
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.cloud import SECRET
from tests.support.diagnostics_desk import Desk, admin

R = pb.CommandResult


async def test_a_full_disk_is_cleared_with_notice_verified_and_audited(desk: Desk) -> None:
    await desk.report(3, 97.0)
    incident = await desk.incident()
    assert incident["rule"] == "disk_full"
    path = f"/v1/ops/incidents/{incident['incident_id']}/remediations"
    dry = await desk.api.post(
        path, json={"action": "free_temp_space", "dry_run": True}, headers=admin("ops-1")
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["status"] == "dry_run" and dry.json()["what"].endswith("on 1 session")
    assert dry.json()["sessions"][0]["reachable"] is True

    asked_ns = time.time_ns()
    started = await desk.api.post(path, json={"action": "free_temp_space"}, headers=admin("ops-1"))
    assert started.status_code == 200 and started.json()["status"] == "running", started.text
    notice = await desk.agent.next_command()
    assert notice.issued_unix_nano >= asked_ns  # the dry run sent nothing
    assert notice.notice.title.startswith("Your administrator will remove temporary files")
    fix = await desk.agent.next_command()
    assert fix.remediation.free_temp_space.older_than_s == 3600 and fix.issuer.id == "ops-1"
    await desk.agent.result(notice.command_id)
    await desk.agent.result(fix.command_id, observed={"freed_bytes": "123456"})
    await desk.report(2, 60.0)  # the disk has room again
    done = await desk.remediation(started.json()["remediation_id"], "done")
    (outcome,) = done["sessions"]
    assert (outcome["status"], outcome["cleared"], outcome["command_id"]) == (
        "succeeded",
        True,
        fix.command_id,
    )

    audit = (await desk.api.get("/v1/ops/audit", headers=admin("ops-1"))).json()
    assert audit["intact"], audit
    mine = [e for e in audit["entries"] if e["result"].get("remediation_id") == done["remediation_id"]]
    assert [e["action"] for e in mine] == [
        "remediation.free_temp_space.requested",
        "remediation.free_temp_space.finished",
    ]
    assert mine[-1]["actor"] == "ops-1" and mine[-1]["reason"].startswith(
        f"incident {incident['incident_id']}"
    )
    assert mine[-1]["result"]["sessions"][0]["cleared"] is True
    assert len(desk.agent.commands) == 2


async def test_a_risky_fix_waits_for_a_second_admin_and_a_failure_is_not_called_cleared(desk: Desk) -> None:
    await desk.report(2, 99.0)
    incident = await desk.incident()
    path = f"/v1/ops/incidents/{incident['incident_id']}/remediations"
    unnamed = await desk.api.post(path, json={"action": "end_process"}, headers=admin("ops-1"))
    assert unnamed.status_code == 400 and "pid" in unnamed.text  # which process?
    body = {"action": "end_process", "pid": 4242, "executable": "dd"}
    asked = await desk.api.post(path, json=body, headers=admin("ops-1"))
    assert asked.json()["status"] == "awaiting_approval", asked.text
    approve = f"/v1/ops/remediations/{asked.json()['remediation_id']}/approve"
    assert (await desk.api.post(approve, headers=admin("ops-1"))).status_code == 403  # not by the requester
    user_token = {"Authorization": f"Bearer {issue_token(SECRET, desk.agent.user, ['read', 'manage'])}"}
    assert (await desk.api.post(approve, headers=user_token)).status_code == 403
    approved_ns = time.time_ns()
    approved = await desk.api.post(approve, headers=admin("ops-2"))
    assert approved.json()["approved_by"] == "ops-2", approved.text
    notice = await desk.agent.next_command()
    assert notice.issued_unix_nano >= approved_ns  # nothing went down before the approval
    kill = await desk.agent.next_command()
    assert (kill.remediation.kill_process.pid, kill.remediation.kill_process.expect_executable) == (
        4242,
        "dd",
    )
    await desk.agent.result(notice.command_id)
    await desk.agent.result(kill.command_id, R.STATUS_FAILED, error="no process 4242")
    done = await desk.remediation(asked.json()["remediation_id"], "done")
    (outcome,) = done["sessions"]
    assert (outcome["status"], outcome["error"], outcome["cleared"]) == ("failed", "no process 4242", None)
    audit = (await desk.api.get("/v1/ops/audit", headers=admin("ops-2"))).json()
    steps = [
        e["action"] for e in audit["entries"] if e["result"].get("remediation_id") == done["remediation_id"]
    ]
    assert steps == [
        "remediation.end_process.requested",
        "remediation.end_process.approved",
        "remediation.end_process.finished",
    ]


async def test_logging_a_session_off_is_for_admins_and_waits_for_a_second_one(desk: Desk) -> None:
    await desk.report(2, 99.0)
    incident = await desk.incident()
    path = f"/v1/ops/incidents/{incident['incident_id']}/remediations"
    operator = {"Authorization": f"Bearer {issue_token(SECRET, 'op-1', ['read', 'ops_operate'])}"}
    refused = await desk.api.post(path, json={"action": "log_off"}, headers=operator)
    assert refused.status_code == 403, refused.text
    dry = await desk.api.post(path, json={"action": "log_off", "dry_run": True}, headers=admin("ops-1"))
    assert dry.json()["what"] == "log the session off (apps get 30 s to close) on 1 session", dry.text
    asked = await desk.api.post(path, json={"action": "log_off", "grace_s": 20}, headers=admin("ops-1"))
    assert asked.json()["status"] == "awaiting_approval", asked.text
    approve = f"/v1/ops/remediations/{asked.json()['remediation_id']}/approve"
    assert (await desk.api.post(approve, headers=admin("ops-2"))).status_code == 200
    notice = await desk.agent.next_command()
    assert notice.notice.title == "Your administrator will log the session off (apps get 20 s to close)"
    log_off = await desk.agent.next_command()
    assert log_off.remediation.WhichOneof("action") == "log_off" and log_off.remediation.log_off.grace_s == 20
    await desk.agent.result(notice.command_id)
    await desk.agent.result(log_off.command_id, observed={"windows_closed": "3"})
    await desk.report(2, 40.0)
    done = await desk.remediation(asked.json()["remediation_id"], "done")
    assert (done["sessions"][0]["status"], done["sessions"][0]["cleared"]) == ("succeeded", True)
