"""The user's own fix (端云协同): a notice about their desktop with a fix they apply themselves, over the
real downlink, and nothing of it for anybody else."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from cloud_infer.auth import issue_token
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.cloud import SECRET, wait_for
from tests.support.diagnostics_desk import GIB, Desk, admin


def user(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, name, ['read', 'manage'])}"}


async def memory_pressure(desk: Desk, seconds: int) -> None:
    """``seconds`` of samples with 97 % of memory in use, most of it held by chromium."""
    hog = pb.ProcessUsage(pid=4321, name="chromium", app_id="chromium", cpu_percent=12.0, rss_bytes=14 * GIB)
    daemon = pb.ProcessUsage(pid=77, name="Xvfb", app_id="", cpu_percent=1.0, rss_bytes=15 * GIB)
    for _ in range(seconds):
        desk.clock_ns += 1_000_000_000
        desk.agent.seq += 1
        sample = pb.SystemMetrics(
            cpu_percent=20.0,
            memory_used_bytes=int(15.5 * GIB),
            memory_total_bytes=16 * GIB,
            disk_used_percent=40.0,
            top_memory=[daemon, hog],
        )
        await desk.agent.send([pb.Event(seq=desk.agent.seq, time_unix_nano=desk.clock_ns, metrics=sample)])


async def notices(api: httpx.AsyncClient, name: str) -> list[dict[str, Any]]:
    reply = await api.get("/v1/me/health", headers=user(name))
    assert reply.status_code == 200, reply.text
    found: list[dict[str, Any]] = reply.json()["notices"]
    return found


async def test_the_user_sees_their_fault_and_closes_the_app_themselves_and_nobody_else_can(
    desk: Desk,
) -> None:
    owner = desk.agent.user
    assert await notices(desk.api, owner) == []
    await memory_pressure(desk, 14)
    await wait_for(lambda: desk.diagnostics.incidents(open_only=True))
    (notice,) = await notices(desk.api, owner)
    assert notice["title"] == "Memory pressure"
    (fix,) = notice["fixes"]
    # The app's process, never the X server that holds more: it belongs to no desktop app.
    assert (fix["action"], fix["pid"], fix["executable"]) == ("end_process", 4321, "chromium")
    assert fix["label"].startswith("Close chromium (pid 4321)")

    # Another user sees nothing of it and cannot apply it.
    assert await notices(desk.api, "mallory") == []
    path = f"/v1/me/health/{notice['incident_id']}/fixes/f1"
    assert (await desk.api.post(path, headers=user("mallory"))).status_code == 404
    assert (await desk.api.post(path.replace("/f1", "/f2"), headers=user(owner))).status_code == 404
    read_only = {"Authorization": f"Bearer {issue_token(SECRET, owner, 'read')}"}
    assert (await desk.api.post(path, headers=read_only)).status_code == 403

    applying = asyncio.create_task(desk.api.post(path, headers=user(owner)))
    kill = await desk.agent.next_command()
    assert kill.issuer.id == owner and kill.remediation.kill_process.pid == 4321
    assert kill.remediation.kill_process.expect_executable == "chromium"
    await desk.agent.result(kill.command_id, observed={"ended": "4321"})
    reply = await applying
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "succeeded" and reply.json()["command_id"] == kill.command_id

    audit = (await desk.api.get("/v1/ops/audit", headers=admin("ops-1"))).json()
    (entry,) = [e for e in audit["entries"] if e["action"] == "remediation.end_process.self"]
    assert audit["intact"] and entry["actor"].startswith("user of s-")
    assert owner not in str(entry)  # admins read pseudonyms, never who the user is
