"""The desktop's VNC server: x11vnc on an X display, reachable only through a unix socket in a 0700 folder.

The thin client's browser never reaches this socket: the cloud's desktop relay
(``cloud_infer.desktop``) does, after it has authenticated and authorized the user, so the server
needs no password of its own (``-nopw``) and listens on no TCP port at all. ``-rfbport 0`` alone is not
enough: x11vnc 0.9.16 still opens an IPv6 listener on 5900 unless ``-rfbportv6 -1`` closes it too
(tests/e2e/test_desk.py checks the process has no TCP socket). Its own clipboard exchange is off
(``-nosel``): classic RFB cut text is Latin-1, so the clipboard goes through the agent's commands
instead, which carry any text.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

START_DEADLINE_S = 15.0
STOP_GRACE_S = 5.0
_PROBE_TIMEOUT_S = 1.0
_BANNER = b"RFB "
SOCKET_NAME = "rfb.sock"


class VncError(RuntimeError):
    """x11vnc is missing or did not come up in time."""


def x11vnc_argv(display: str, socket_path: Path) -> list[str]:
    """The x11vnc command line serving ``display`` on the unix socket ``socket_path`` only."""
    return [
        "x11vnc",
        "-display",
        display,
        "-unixsock",
        str(socket_path),
        "-rfbport",
        "0",
        "-rfbportv6",
        "-1",
        "-no6",
        "-nopw",
        "-shared",
        "-forever",
        "-nosel",  # the clipboard goes through the agent (UTF-8), not RFB cut text (Latin-1)
        "-noxdamage",  # Xvfb's damage reports are unreliable for polling; x11vnc scans itself
        "-nolookup",
        "-quiet",
    ]


class VncServer:
    """x11vnc on ``display``; use as a context manager or call start()/stop().

    ``endpoint`` (``unix:<path>``) is what the cloud's ``SHADOWDESK_DESKTOP_ENDPOINTS`` names.
    """

    def __init__(self, display: str, runtime_dir: Path | None = None, log_path: Path | None = None) -> None:
        self.display = display
        self._runtime_dir = runtime_dir
        self._log_path = log_path
        self._own_dir: Path | None = None
        self.socket_path = Path()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"unix:{self.socket_path}"

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    def __enter__(self) -> VncServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if shutil.which("x11vnc") is None:
            raise VncError("x11vnc is not installed (scripts/setup.sh installs it)")
        # The folder's mode is the socket's only lock: nobody but this user may reach the desktop.
        if self._runtime_dir is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="shadowdesk-vnc-"))
            folder = self._own_dir
        else:
            folder = self._runtime_dir
            folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        self.socket_path = folder / SOCKET_NAME
        self.socket_path.unlink(missing_ok=True)
        with contextlib.ExitStack() as files:
            log = files.enter_context(open(self._log_path, "ab")) if self._log_path else subprocess.DEVNULL
            self._process = subprocess.Popen(
                x11vnc_argv(self.display, self.socket_path),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_DEADLINE_S
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                status = self._process.poll()
                self.stop()
                raise VncError(f"x11vnc on {self.display} did not serve its socket (exit status {status})")
            time.sleep(0.1)  # polling interval of a deadline-bounded wait

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=STOP_GRACE_S)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.socket_path.name:
            self.socket_path.unlink(missing_ok=True)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    def _answers(self) -> bool:
        """Whether the socket greets with an RFB banner (x11vnc is ready for viewers)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(_PROBE_TIMEOUT_S)
                probe.connect(str(self.socket_path))
                return probe.recv(len(_BANNER)) == _BANNER
        except OSError:
            return False
