"""`shadowdesk up`, the README's demo, on a virtual desktop: its sign-in link shows the terminal window, and
its admin console signs in the printed demo admin and shows the desktop's session."""

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
    http_port, grpc_port, console_port = free_port(), free_port(), free_port()
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        demo = subprocess.Popen(
            [
                sys.executable, "-m", "shadowdesk.cli", "up",
                "--data-dir", str(tmp_path / "data"),
                "--http-port", str(http_port),
                "--grpc-port", str(grpc_port),
                "--console-port", str(console_port),
                "--desktop", "virtual",
                "--for", "60",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        ticket: list[str] = []

        def printed_link() -> bool:
            ticket[:] = re.findall(r"/(?:desk|sidebar)#login=([\w.-]+)", log_path.read_text())
            return bool(ticket)

        wait_until(printed_link, 60, "the demo to print its sign-in link (/desk, or /sidebar without x11vnc)")
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
        (password,) = re.findall(r"ops-admin  (\S+)  \(admin\)", printed)
        with httpx.Client(base_url=f"http://127.0.0.1:{console_port}", timeout=10) as console:
            signed_in = console.post("/api/login", json={"username": "ops-admin", "password": password})
            assert signed_in.status_code == 200 and signed_in.json()["role"] == "admin", signed_in.text

            def session_on_console() -> bool:
                reply = console.get("/api/ops/sessions")  # through the console's token exchange
                return reply.status_code == 200 and bool(reply.json()["sessions"])

            wait_until(session_on_console, 30, "the demo desktop's session on the console")
    finally:
        demo.terminate()
        exit_code = demo.wait(timeout=30)
    assert exit_code == 0, log_path.read_text()[-3000:]
    assert (tmp_path / "data" / "store").is_dir()
