"""A real MinIO server for tests: started on free 127.0.0.1 ports with a temp data dir; ``start()``
returns once it is live and initialized (buckets can be made, a wrong key is refused, nothing is 503).

``stop()`` and ``start()`` may be called mid-test to simulate MinIO dying and coming back: the
restarted server keeps the data dir, the port, the credentials and the KMS key. ``freeze()``/``thaw()``
make it hang. Each server has its own built-in KMS key (``MINIO_KMS_SECRET_KEY``), so buckets can be
encrypted as the store requires by default; ``kms=False`` starts one without any KMS.
"""

from __future__ import annotations

import base64
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

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error
from pydantic import SecretStr

from recall_store.config import StoreSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
BINARY_ENV = "SHADOWDESK_MINIO_BINARY"
START_DEADLINE_S = 60.0
STOP_GRACE_S = 10.0
READINESS_PROBE_BUCKET = "sdu-readiness-probe"


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

    def __init__(self, data_dir: Path, binary: str | None = None, kms: bool = True) -> None:
        self.data_dir = data_dir
        self.binary = binary or minio_binary()
        self.port = free_port()
        self.console_port = free_port()
        self.access_key = "shadowdesk-test"
        self.secret_key = secrets.token_hex(16)
        # "<key name>:<base64 of 32 bytes>": MinIO's single built-in key, enough for SSE-S3.
        self.kms_secret_key = (
            f"shadowdesk-test:{base64.b64encode(secrets.token_bytes(32)).decode()}" if kms else None
        )
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
        # No inherited KMS configuration: this server has exactly the KMS (or none) it was built with.
        env = {
            **{name: value for name, value in os.environ.items() if not name.startswith("MINIO_KMS_")},
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
        }
        if self.kms_secret_key is not None:
            env["MINIO_KMS_SECRET_KEY"] = self.kms_secret_key
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
        self._wait_ready()

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

    def _wait_ready(self) -> None:
        url = f"http://{self.endpoint}/minio/health/live"
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"minio exited during start-up; log: {self._log_tail()}")
            # OSError covers URLError and refused connections while it boots.
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200 and self._initialized():
                    return
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"minio not ready within {START_DEADLINE_S}s; log: {self._log_tail()}")

    def _initialized(self) -> bool:
        """MinIO is live before its object layer and IAM are loaded, and until then answers requests 503
        (XMinioServerNotInitialized, XMinioIAMNotInitialized); ready once the root user can create and
        remove a bucket and an unknown key is refused."""
        no_retries = urllib3.PoolManager(timeout=urllib3.Timeout(1.0), retries=False)
        root = Minio(self.endpoint, self.access_key, self.secret_key, secure=False, http_client=no_retries)
        stranger = Minio(
            self.endpoint, "shadowdesk-readiness", "not-a-real-secret", secure=False, http_client=no_retries
        )
        try:
            try:
                root.make_bucket(READINESS_PROBE_BUCKET)
            except S3Error as exc:
                # BucketAlreadyOwnedByYou: an earlier probe's, if MinIO stopped before it was removed.
                if exc.code != "BucketAlreadyOwnedByYou":
                    return False
            root.remove_bucket(READINESS_PROBE_BUCKET)
            stranger.bucket_exists(READINESS_PROBE_BUCKET)
        except S3Error as exc:
            return exc.code == "InvalidAccessKeyId"
        except (MinioException, urllib3.exceptions.HTTPError, OSError):
            return False
        finally:
            no_retries.clear()
        return False  # a stranger's key was accepted: not the server we configured

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
