"""The real ``shadowdesk server`` and ``shadowdesk agent`` as subprocesses, for end-to-end tests.

Each process can be stopped gracefully (SIGTERM), killed (SIGKILL) and started again with the same
ports, data and spool, which is what the crash tests need.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from cloud_infer.auth import issue_token
from harness.minio import free_port

SHADOWDESK = [sys.executable, "-m", "shadowdesk.cli"]
TOKEN_SECRET = "e2e-token-secret-that-is-at-least-32-bytes"


def wait_until_serving(url: str, timeout_s: float, alive: Callable[[], bool], log: Callable[[], str]) -> None:
    """Poll ``url`` until it answers 200; fail at once if the process dies, or at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError(f"the server exited during start-up; log:\n{log()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout_s} s; log:\n{log()}")


class ShadowdeskProcess:
    """One ``shadowdesk <command>`` process with a fixed environment and a log file."""

    def __init__(self, command: str, env: Mapping[str, str], log_path: Path, cpu: int | None = None) -> None:
        self.command = command
        self.env = {**os.environ, **env}
        self.log_path = log_path
        # taskset pins before exec, so every thread the process ever starts stays on that core.
        self._pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"shadowdesk {self.command} is not running")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self._pin, *SHADOWDESK, self.command], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def terminate(self, timeout_s: float = 20.0) -> int:
        """SIGTERM and wait: the graceful stop a deployment does."""
        return self._signal(signal.SIGTERM, timeout_s)

    def kill(self) -> int:
        """SIGKILL: a crash, with no chance to flush anything."""
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: signal.Signals, timeout_s: float) -> int:
        process, self.process = self.process, None
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(sig)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            raise AssertionError(
                f"shadowdesk {self.command} ignored {sig.name}; log:\n{self.log()}"
            ) from None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.terminate()

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-6000:]
        return "<no log>"


class ServerProcess(ShadowdeskProcess):
    def __init__(
        self, store_env: Mapping[str, str], log_path: Path, cpu: int | None = None, **settings: str
    ) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        env = {
            "SHADOWDESK_ENVIRONMENT": "local",
            "SHADOWDESK_TOKEN_SECRET": TOKEN_SECRET,
            "SHADOWDESK_GRPC_PORT": str(self.grpc_port),
            "SHADOWDESK_HTTP_PORT": str(self.http_port),
            **{f"SHADOWDESK_{key.upper()}": value for key, value in settings.items()},
            **store_env,
        }
        super().__init__("server", env, log_path, cpu)

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 30.0) -> None:
        super().start()
        wait_until_serving(f"{self.http_url}/health", timeout_s, lambda: self.running, self.log)


def agent_env(
    server: ServerProcess, token: str, user_id: str, session_id: str, spool: Path, **settings: str
) -> dict[str, str]:
    return {
        "SHADOWDESK_AGENT_SERVER": server.grpc_address,
        "SHADOWDESK_AGENT_TOKEN": token,
        "SHADOWDESK_AGENT_USER_ID": user_id,
        "SHADOWDESK_AGENT_SESSION_ID": session_id,
        "SHADOWDESK_AGENT_SPOOL_PATH": str(spool),
        "SHADOWDESK_AGENT_BACKOFF_MAX_S": "1",
        **{f"SHADOWDESK_AGENT_{key.upper()}": value for key, value in settings.items()},
    }


def minio_store_env(endpoint: str, access_key: str, secret_key: str) -> dict[str, str]:
    return {
        "SHADOWDESK_STORE_BACKEND": "minio",
        "SHADOWDESK_STORE_MINIO_ENDPOINT": endpoint,
        "SHADOWDESK_STORE_MINIO_ACCESS_KEY": access_key,
        "SHADOWDESK_STORE_MINIO_SECRET_KEY": secret_key,
        "SHADOWDESK_STORE_TIMEOUT_S": "5",
    }


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    """Poll ``predicate`` until it returns truthy or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def desktop_agent(
    display: str,
    app_env: Mapping[str, str],
    server: ServerProcess,
    user_id: str,
    session_id: str,
    workdir: Path,
    **settings: str,
) -> ShadowdeskProcess:
    """The real agent on a desktop (its ``DISPLAY`` and session bus ``app_env``), streaming to ``server`` as
    ``user_id``'s ``session_id`` with its spool and log in ``workdir``; started."""
    token = issue_token(TOKEN_SECRET, user_id, "ingest", session_id=session_id, ttl_s=7200)
    env = agent_env(server, token, user_id, session_id, workdir / "spool.sqlite3", **settings)
    agent = ShadowdeskProcess("agent", {"DISPLAY": display, **app_env, **env}, workdir / "agent.log")
    agent.start()
    return agent
