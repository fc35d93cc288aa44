"""A private D-Bus session bus for a test desktop, which is all AT-SPI needs to come up.

The accessibility bus (``at-spi-bus-launcher``) and the registry (``at-spi2-registryd``) are D-Bus
activated on first use, in the bus daemon's process group, so stopping the group stops them too.
Apps started with ``app_env`` (GTK3, Chromium; not with NO_AT_BRIDGE=1) register their accessible
trees once accessibility is on; the accessibility sensor turns it on.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from types import TracebackType

START_DEADLINE_S = 10.0
STOP_GRACE_S = 5.0


class SessionBus:
    """``dbus-daemon --session`` on the given desktop environment; a context manager."""

    def __init__(self, desktop_env: Mapping[str, str]) -> None:
        self.address = ""
        self._desktop_env = dict(desktop_env)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def app_env(self) -> dict[str, str]:
        """What to add to an app's environment to put it on this bus."""
        return {"DBUS_SESSION_BUS_ADDRESS": self.address}

    def __enter__(self) -> SessionBus:
        if shutil.which("dbus-daemon") is None:
            raise RuntimeError("dbus-daemon is not installed (apt-get install dbus-x11 at-spi2-core)")
        self._process = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
            env=self._desktop_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self._process.stdout is not None
        readable, _, _ = select.select([self._process.stdout], [], [], START_DEADLINE_S)
        line = self._process.stdout.readline().decode().strip() if readable else ""
        if not line:
            self.__exit__(None, None, None)
            raise RuntimeError(f"dbus-daemon printed no address within {START_DEADLINE_S}s")
        self.address = line
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + STOP_GRACE_S
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)  # polling interval of a deadline-bounded wait
            if process.poll() is not None:
                break
        if process.stdout is not None:
            process.stdout.close()
