"""A real MinIO server for tests: started on free 127.0.0.1 ports with a temp data dir.

``stop()`` and ``start()`` may be called mid-test to simulate MinIO dying and coming back: the
restarted server keeps the data dir, the port and the credentials. ``freeze()``/``thaw()`` make it hang.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from recall_store.config import StoreSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
BINARY_ENV = "SHADOWDESK_MINIO_BINARY"
START_DEADLINE_S = 60.0
STOP_GRACE_S = 10.0


def minio_binary() -> str:
    """$SHADOWDESK_MINIO_BINARY, else whatever scripts/minio.sh finds or builds."""
    if binary := os.environ.get(BINARY_ENV):
        return binary
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "minio.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,  # a first run builds MinIO from source
    )
    return result.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MinioServer:
    """One MinIO process; use as a context manager or call start()/stop()."""

    def __init__(self, data_dir: Path, binary: str | None = None) -> None:
        self.data_dir = data_dir
        self.binary = binary or minio_binary()
        self.port = free_port()
        self.console_port = free_port()
        self.access_key = "shadowdesk-test"
        self.secret_key = secrets.token_hex(16)
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = data_dir.parent / f"{data_dir.name}.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    "server",
                    str(self.data_dir),
                    "--address",
                    self.endpoint,
                    "--console-address",
                    f"127.0.0.1:{self.console_port}",
                    "--quiet",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_live()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a frozen server could not act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_GRACE_S)

    def freeze(self) -> None:
        """SIGSTOP the server: it keeps its port open but never answers, like a hung host."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGSTOP)
        # The stop reaches each thread of the process on its own; wait until none can still answer.
        deadline = time.monotonic() + STOP_GRACE_S
        while not self._all_threads_stopped():
            if time.monotonic() > deadline:
                raise TimeoutError(f"minio did not stop within {STOP_GRACE_S}s of SIGSTOP")
            time.sleep(0.01)

    def thaw(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def _all_threads_stopped(self) -> bool:
        assert self._process is not None
        states = []
        for stat in Path(f"/proc/{self._process.pid}/task").glob("*/stat"):
            with contextlib.suppress(OSError):  # a thread that just exited
                # Field 3, after "pid (comm)", is the state; comm may contain spaces, so split at ')'.
                states.append(stat.read_text().rpartition(")")[2].split()[0])
        return bool(states) and all(state in ("T", "t") for state in states)

    def settings(self, **overrides: Any) -> StoreSettings:
        """StoreSettings for this server; ``overrides`` replace any field (e.g. ``timeout_s=2``)."""
        fields: dict[str, Any] = {
            "backend": "minio",
            "minio_endpoint": self.endpoint,
            "minio_access_key": self.access_key,
            "minio_secret_key": SecretStr(self.secret_key),
            "minio_secure": False,
        }
        return StoreSettings(**{**fields, **overrides})

    def _wait_live(self) -> None:
        url = f"http://{self.endpoint}/minio/health/live"
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"minio exited during start-up; log: {self._log_tail()}")
            # OSError covers URLError and refused connections while it boots.
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"minio not live within {START_DEADLINE_S}s; log: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "<no log>"

    def __enter__(self) -> MinioServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
