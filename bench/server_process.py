"""``shadowdesk server`` as a subprocess, optionally pinned to one CPU core with taskset."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import grpc

logger = logging.getLogger(__name__)

READY_DEADLINE_S = 60.0
STOP_GRACE_S = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """Runs the cloud server with ``env`` (SHADOWDESK_* variables) on free 127.0.0.1 ports."""

    def __init__(self, env: dict[str, str], log_path: Path, cpu: int | None = None) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        self._env = {
            **os.environ,
            **env,
            "SHADOWDESK_GRPC_HOST": "127.0.0.1",
            "SHADOWDESK_HTTP_HOST": "127.0.0.1",
            "SHADOWDESK_GRPC_PORT": str(self.grpc_port),
            "SHADOWDESK_HTTP_PORT": str(self.http_port),
        }
        self._log_path = log_path
        self._cpu = cpu
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process.pid

    def start(self) -> None:
        argv = [sys.executable, "-m", "shadowdesk.cli", "server"]
        if self._cpu is not None:
            # taskset pins before exec, so every thread the server ever starts stays on that core.
            argv = ["taskset", "-c", str(self._cpu), *argv]
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(argv, env=self._env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            logger.warning("server did not stop within %.0f s of SIGTERM; killing it", STOP_GRACE_S)
            process.kill()
            process.wait(timeout=STOP_GRACE_S)

    def log_tail(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "<no log>"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_DEADLINE_S
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"the server exited during start-up; log:\n{self.log_tail()}")
            with grpc.insecure_channel(self.target) as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=1.0)
                    return
                except grpc.FutureTimeoutError:
                    continue
        self.stop()
        raise TimeoutError(f"the server was not ready within {READY_DEADLINE_S} s; log:\n{self.log_tail()}")

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
