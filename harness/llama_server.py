"""llama.cpp's OpenAI-compatible server (``python -m llama_cpp.server``) as a child process."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from harness.minio import free_port
from harness.processes import wait_until_serving

SERVED_MODEL = "smollm2-135m-instruct"
START_DEADLINE_S = 60.0


class LlamaServer:
    """``python -m llama_cpp.server`` on a free port, serving the packaged model."""

    def __init__(self, model_path: Path, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "llama_cpp.server",
                "--model", str(model_path),
                "--model_alias", SERVED_MODEL,
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--n_ctx", "1024",
                "--n_threads", "1",
                "--n_threads_batch", "1",
                "--interrupt_requests", "False",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def running(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout_s: float) -> None:
        wait_until_serving(f"{self.base_url}/models", timeout_s, self.running, self.log)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@contextlib.contextmanager
def running_llama_server(model_path: Path, log_path: Path) -> Iterator[LlamaServer]:
    """A started server, stopped on exit."""
    server = LlamaServer(model_path, log_path)
    try:
        server.wait_ready(START_DEADLINE_S)
        yield server
    finally:
        server.stop()
