"""`shadowdesk up --scenario expense` on a virtual desktop: the portal answers, the invoice is open in
evince, the cost list in mousepad, the portal's sign-in page in Chromium, and the portal files a claim."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.minio import free_port
from harness.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def visible_titles(display: str) -> set[str]:
    ids = subprocess.run(
        ["xdotool", "search", "--onlyvisible", "--name", "."],
        env={"DISPLAY": display},
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.split()
    names = (
        subprocess.run(
            ["xdotool", "getwindowname", window], env={"DISPLAY": display}, capture_output=True, text=True
        ).stdout.strip()
        for window in ids
    )
    return set(names)


def test_up_with_the_expense_scenario_opens_its_apps_and_serves_the_portal(tmp_path: Path) -> None:
    http_port, grpc_port, portal_port = free_port(), free_port(), free_port()
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        demo = subprocess.Popen(
            [
                sys.executable, "-m", "shadowdesk.cli", "up",
                "--data-dir", str(tmp_path / "data"),
                "--http-port", str(http_port),
                "--grpc-port", str(grpc_port),
                "--portal-port", str(portal_port),
                "--desktop", "virtual",
                "--scenario", "expense",
                "--for", "90",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(lambda: "Stop with Ctrl-C" in log_path.read_text(), 90, "the demo's banner")
        printed = log_path.read_text()
        portal = f"http://127.0.0.1:{portal_port}"
        assert f"portal  : {portal}/login  (sign in as alice / expenses-2025)" in printed, printed
        display = re.findall(r"desktop : virtual (:\d+)", printed)[0]
        expected = {
            "invoice-01-en-classic.pdf — Invoice ",
            "cost-list.txt - Mousepad",
            "Sign in - Expense Portal - Chromium",
        }

        def apps_open() -> bool:
            titles = visible_titles(display)
            return all(any(want in title for title in titles) for want in expected)

        wait_until(apps_open, 60, f"evince, mousepad and Chromium on {display}")
        client = httpx.Client(base_url=portal, follow_redirects=True, timeout=10)
        signed_in = client.post(
            "/login", data={"username": "alice", "password": "expenses-2025", "next": "/claims/new"}
        )
        assert signed_in.status_code == 200 and signed_in.url.path.endswith("/page/1")
        assert (tmp_path / "data" / "expense" / "cost-list.txt").read_text(encoding="utf-8").strip()
    finally:
        demo.terminate()
        exit_code = demo.wait(timeout=30)
    assert exit_code == 0, log_path.read_text()[-3000:]
    # The scenario's processes went with the demo: its portal no longer answers.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{portal_port}/health", timeout=2)
