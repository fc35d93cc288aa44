"""A virtual X11 desktop for the demo and the tests: Xvfb on a free display, openbox, and real apps.

``VirtualDesktop`` picks a free display with ``Xvfb -displayfd``, starts openbox, launches apps with
DISPLAY set, finds and activates their windows with xdotool (polling with deadlines), and on stop
kills every process group it started, newest first.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType

from Xlib import X
from Xlib import error as xerror
from Xlib.display import Display

START_DEADLINE_S = 20.0
STOP_GRACE_S = 5.0
COMMAND_TIMEOUT_S = 10.0


class DesktopError(RuntimeError):
    """The desktop or one of its apps did not come up in time."""


class VirtualDesktop:
    """Xvfb + openbox; use as a context manager or call start()/stop()."""

    def __init__(self, width: int = 1280, height: int = 800, window_manager: str | None = "openbox") -> None:
        self.width = width
        self.height = height
        self.window_manager = window_manager
        self.display = ""
        self._processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> VirtualDesktop:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        """The environment for a process that should run on this desktop."""
        env = dict(os.environ, DISPLAY=self.display)
        env.pop("WAYLAND_DISPLAY", None)
        return env

    def start(self) -> None:
        if shutil.which("Xvfb") is None:
            raise DesktopError("Xvfb is not installed (scripts/setup.sh installs it)")
        read_fd, write_fd = os.pipe()
        try:
            xvfb = subprocess.Popen(
                [
                    "Xvfb",
                    "-displayfd",
                    str(write_fd),
                    "-screen",
                    "0",
                    f"{self.width}x{self.height}x24",
                    "-nolisten",
                    "tcp",
                    "-noreset",
                ],
                pass_fds=(write_fd,),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            self._processes.append(xvfb)
            os.close(write_fd)
            self.display = ":" + self._read_display_number(read_fd, xvfb)
        finally:
            os.close(read_fd)
        if self.window_manager:
            self.launch([self.window_manager])
            self._wait(self._window_manager_ready, "window manager")

    def stop(self) -> None:
        """Kill every process group started here (apps, then the window manager, then Xvfb)."""
        for process in reversed(self._processes):
            _kill_group(process)
        self._processes.clear()

    def launch(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``argv`` on this desktop (with ``env`` added to its environment) in its own process
        group; stopped with the desktop."""
        process = subprocess.Popen(
            list(argv),
            env={**self.env, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._processes.append(process)
        return process

    def launch_xterm(self, title: str) -> tuple[subprocess.Popen[bytes], int]:
        """An xterm titled ``title`` running a silent command (a shell prompt would retitle it);
        returns the process and its window id once the window is mapped."""
        process = self.launch(["xterm", "-T", title, "-e", "sleep", "infinity"])
        return process, self.wait_for_window(title)

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """Stop one launched app (its whole process group)."""
        _kill_group(process)
        self._processes.remove(process)

    def xdotool(self, *args: str) -> str:
        result = subprocess.run(
            ["xdotool", *args], env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
        if result.returncode != 0:
            raise DesktopError(f"xdotool {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def find_windows(self, title: str) -> list[int]:
        """Ids of visible windows whose title is exactly ``title``."""
        result = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", f"^{re.escape(title)}$"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        return [int(line) for line in result.stdout.split()]  # exit status 1 just means "none yet"

    def wait_for_window(self, title: str, timeout_s: float = START_DEADLINE_S) -> int:
        found: list[int] = []

        def mapped() -> bool:
            found[:] = self.find_windows(title)
            return bool(found)

        self._wait(mapped, f"window {title!r}", timeout_s)
        return found[0]

    def active_window(self) -> int:
        try:
            return int(self.xdotool("getactivewindow").strip())
        except DesktopError:
            return 0

    def activate(self, window_id: int) -> None:
        """Focus ``window_id`` through the window manager and wait until it is the active window."""
        self.xdotool("windowactivate", str(window_id))
        self._wait(lambda: self.active_window() == window_id, f"activation of window {window_id}")

    def set_title(self, window_id: int, title: str) -> None:
        self.xdotool("set_window", "--name", title, str(window_id))

    def _read_display_number(self, read_fd: int, xvfb: subprocess.Popen[bytes]) -> str:
        deadline = time.monotonic() + START_DEADLINE_S
        data = b""
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or xvfb.poll() is not None:
                self.stop()
                raise DesktopError(f"Xvfb did not report a display (exit status {xvfb.poll()})")
            readable, _, _ = select.select([read_fd], [], [], min(remaining, 0.5))
            if readable:
                chunk = os.read(read_fd, 64)
                if not chunk:
                    continue
                data += chunk
        return data.decode().strip()

    def _window_manager_ready(self) -> bool:
        try:
            display = Display(self.display)
        except (xerror.DisplayError, xerror.ConnectionClosedError):
            return False
        try:
            check = display.screen().root.get_full_property(
                display.get_atom("_NET_SUPPORTING_WM_CHECK"), X.AnyPropertyType
            )
            return check is not None and len(check.value) > 0
        finally:
            display.close()

    def _wait(self, condition: Callable[[], bool], what: str, timeout_s: float = START_DEADLINE_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise DesktopError(f"timed out after {timeout_s}s waiting for {what} on {self.display}")
            time.sleep(0.05)  # polling interval of a deadline-bounded wait


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=STOP_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue
