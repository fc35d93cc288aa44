"""`shadowdesk up`, the README's demo, on a virtual desktop: its sign-in link shows the terminal window."""

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

_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


def test_up_streams_the_virtual_desktop_into_the_local_store(tmp_path: Path) -> None:
    http_port, grpc_port = free_port(), free_port()
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        demo = subprocess.Popen(
            [
                sys.executable, "-m", "shadowdesk.cli", "up",
                "--data-dir", str(tmp_path / "data"),
                "--http-port", str(http_port),
                "--grpc-port", str(grpc_port),
                "--desktop", "virtual",
                "--for", "60",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        ticket: list[str] = []

        def printed_link() -> bool:
            ticket[:] = re.findall(r"/sidebar#login=([\w.-]+)", log_path.read_text())
            return bool(ticket)

        wait_until(printed_link, 60, "the demo to print its sidebar sign-in link")
        printed = log_path.read_text()
        # The link's ticket is the only credential printed: a token is minted on demand by the CLI.
        assert _JWT.findall(printed) == ticket, printed
        url = re.findall(r"(http://127\.0\.0\.1:\d+/v1/timeline)\b", printed)[0]
        # Redeemed as the sidebar does, once, for a token.
        session = httpx.post(
            url.replace("/v1/timeline", "/v1/auth/session"), json={"ticket": ticket[0]}, timeout=10
        )
        assert session.status_code == 200, session.text
        token = session.json()["token"]

        def terminal_in_timeline() -> bool:
            response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
            return response.status_code == 200 and any(
                span["title"] == "Shadowdesk demo terminal" and span["app_id"] == "xterm" and span["frames"]
                for span in response.json()["spans"]
            )

        wait_until(
            terminal_in_timeline, 60, f"the demo terminal in the timeline; log:\n{log_path.read_text()}"
        )
    finally:
        demo.terminate()
        exit_code = demo.wait(timeout=30)
    assert exit_code == 0, log_path.read_text()[-3000:]
    assert (tmp_path / "data" / "store").is_dir()
