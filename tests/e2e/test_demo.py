"""`shadowdesk up`, the README's demo, on a virtual desktop: it opens the office desktop, records a first
history by working through its apps while the agent streams, and is ready once the queries it suggests
find their windows; the sign-in link's token reads that history, and its admin console signs in the
printed demo admin and shows the desktop's session."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from demo_apps.office import NOTES_FILE, PAGES, TRY, TYPED_NOTE
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
                "--for", "90",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        ticket: list[str] = []

        def printed_link() -> bool:
            ticket[:] = re.findall(r"/(?:desk|sidebar)#login=([\w.-]+)", log_path.read_text())
            return bool(ticket)

        # The first run opens the apps, works through them and waits for its history to be indexed.
        wait_until(printed_link, 300, "the demo's sign-in link (/desk, or /sidebar without x11vnc)")
        printed = log_path.read_text()
        for query, finds in TRY:
            found = rf"\[demo\] searchable: {re.escape(repr(query))} finds '[^'\n]*{re.escape(finds)}"
            assert re.search(found, printed), printed[-3000:]
        assert "try     : " + " · ".join(query for query, _ in TRY) in printed
        # The link's ticket is the only credential printed: a token is minted on demand by the CLI.
        assert _JWT.findall(printed) == ticket, printed
        url = re.findall(r"(http://127\.0\.0\.1:\d+/v1/timeline)\b", printed)[0]
        # Redeemed as the sidebar does, once, for a token.
        session = httpx.post(
            url.replace("/v1/timeline", "/v1/auth/session"), json={"ticket": ticket[0]}, timeout=10
        )
        assert session.status_code == 200, session.text
        token = session.json()["token"]

        headers = {"Authorization": f"Bearer {token}"}
        spans = httpx.get(url, headers=headers, timeout=10).json()["spans"]
        seen = {span["title"] for span in spans if span["frames"]}
        windows = [f"{page.title} - Chromium" for page in PAGES] + ["Terminal - deploy payments-api"]
        for window in windows:
            assert window in seen, seen
        assert any(NOTES_FILE in title and "Mousepad" in title for title in seen), seen
        assert any(title.startswith("invoice.pdf") for title in seen), seen
        search = url.replace("/v1/timeline", "/v1/recall/search")
        # What the demo typed into the notes, read back from the desktop (not from the file).
        typed = httpx.get(search, params={"q": "提交十一月差旅报销"}, headers=headers, timeout=10).json()
        notes = [hit for hit in typed["hits"][:5] if NOTES_FILE in hit["title"]]
        assert notes and "提交十一月差旅报销" in "".join(f["text"] for f in notes[0]["snippet"]), typed
        assert TYPED_NOTE in (tmp_path / "data" / "office" / NOTES_FILE).read_text(encoding="utf-8")
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
