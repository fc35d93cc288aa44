"""`shadowdesk up`, the README's demo, on a virtual desktop: the printed curl shows the terminal window."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.minio import free_port
from tests.support.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


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
        token: list[str] = []

        def printed_token() -> bool:
            token[:] = re.findall(r"Authorization: Bearer ([\w.-]+)", log_path.read_text())
            return bool(token)

        wait_until(printed_token, 60, "the demo to print its timeline command")
        url = re.findall(r"(http://127\.0\.0\.1:\d+/v1/timeline\S*)'?", log_path.read_text())[0]

        def terminal_in_timeline() -> bool:
            response = httpx.get(url, headers={"Authorization": f"Bearer {token[0]}"}, timeout=10)
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
