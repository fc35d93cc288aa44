"""A D-Bus session bus for a demo desktop, so its apps, Chromium and the agent meet on one AT-SPI bus."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

BUS_DEADLINE_S = 10.0


class SessionBusError(RuntimeError):
    """dbus-daemon is missing or did not start."""


def start_session_bus(socket_path: Path, launch: Callable[[list[str]], subprocess.Popen[bytes]]) -> None:
    """Start ``dbus-daemon --session`` on ``socket_path`` through ``launch`` (which owns the process)
    and put its address in this process's environment: the agent here and every app launched after
    this share it."""
    if shutil.which("dbus-daemon") is None:
        raise SessionBusError("dbus-daemon is not installed (scripts/setup.sh installs dbus-x11)")
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    launch(["dbus-daemon", "--session", "--nofork", f"--address=unix:path={socket_path}"])
    deadline = time.monotonic() + BUS_DEADLINE_S
    while not socket_path.exists():
        if time.monotonic() > deadline:
            raise SessionBusError("the D-Bus session bus did not start")
        time.sleep(0.05)  # polling interval of a deadline-bounded wait
    os.environ["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={socket_path}"
