"""``shadowdesk up --scenario expense``: the expense portal, an invoice in evince, the cost list in mousepad.

The scenario's apps live in ``demo_apps/`` of a source checkout (fixtures, not shipped; nothing here
imports them): ``python -m demo_apps`` writes the invoices, the cost list and the weekly notes, serves
the portal and prints one JSON line that says where. On a virtual desktop a D-Bus session bus is
started first and put in this process's environment, so the apps, Chromium and the agent all meet on
one AT-SPI bus. Every process started here is stopped, by process group, with ``stop()``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shadowdesk.session_bus import SessionBusError, start_session_bus

REPO = Path(__file__).resolve().parents[1]
START_DEADLINE_S = 60.0
STOP_GRACE_S = 5.0


class ScenarioError(RuntimeError):
    """The scenario cannot run here, or its portal did not come up."""


class ExpenseScenario:
    def __init__(self, data_dir: Path, display: str, portal_port: int) -> None:
        self._dir = data_dir / "expense"
        self._display = display
        self._port = portal_port
        self._processes: list[subprocess.Popen[bytes]] = []
        self.ready: dict[str, Any] = {}

    def start(self, *, own_bus: bool) -> None:
        """Start the portal and open the apps; ``own_bus``: start a session bus for this desktop."""
        if not (REPO / "demo_apps" / "__main__.py").exists():
            raise ScenarioError("the expense scenario runs from a source checkout: demo_apps/ is missing")
        if own_bus:
            try:
                start_session_bus(self._dir / "dbus-session", lambda argv: self._launch(argv, {}))
            except SessionBusError as error:
                raise ScenarioError(str(error)) from error
        self._start_portal()
        invoice = self.ready["invoices"][0]["path"]
        for argv in (["evince", invoice], ["mousepad", self.ready["cost_list"]]):
            if shutil.which(argv[0]) is None:
                raise ScenarioError(f"{argv[0]} is not installed (scripts/setup.sh installs it)")
            self._launch(argv, {"XDG_CONFIG_HOME": str(self._dir / "config")})
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser is not None:
            sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
            profile = f"--user-data-dir={self._dir / 'chromium-profile'}"
            flags = ["--no-first-run", "--disable-gpu", "--force-renderer-accessibility", profile]
            self._launch([browser, *sandbox, *flags, self.ready["url"] + "/login"], {})

    def banner(self) -> str:
        ready = self.ready
        return (
            "  scenario: expense claim (报销) and weekly report (提报)\n"
            f"  portal  : {ready['url']}/login  (sign in as {ready['user']} / {ready['password']})\n"
            f"  invoices: {Path(ready['invoices'][0]['path']).parent} (the first is open in evince)\n"
            f"  costs   : {ready['cost_list']} (open in mousepad)\n"
            f"  notes   : {ready['weekly_notes']}\n"
            f"  filed   : python -m demo_apps.expense_portal claims --db {self._dir / 'portal.sqlite3'}\n"
        )

    def stop(self) -> None:
        for process in reversed(self._processes):
            _stop_group(process)
        self._processes.clear()

    def _start_portal(self) -> None:
        argv = [sys.executable, "-m", "demo_apps", "--dir", str(self._dir), "--port", str(self._port)]
        log = (self._dir.parent / "expense-portal.log").open("wb")
        process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        log.close()
        self._processes.append(process)
        assert process.stdout is not None
        readable, _, _ = select.select([process.stdout], [], [], START_DEADLINE_S)
        line = process.stdout.readline() if readable else b""
        if not line:
            raise ScenarioError(
                f"the expense portal did not start; see {self._dir.parent / 'expense-portal.log'}"
            )
        self.ready = json.loads(line)

    def _launch(self, argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        environment = {**os.environ, "DISPLAY": self._display, **env}
        process = subprocess.Popen(
            argv,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._processes.append(process)
        return process


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            continue
    if process.stdout is not None:
        process.stdout.close()
