"""The demo's office desktop: real apps showing an office worker's documents, and a first history.

``python -m demo_apps.office`` writes the documents (a source-checkout fixture, run as a process as
``shadowdesk.scenario`` runs the expense portal). ``OfficeDesk.open`` starts a D-Bus session bus (for
AT-SPI) and opens them on the virtual desktop: four pages in Chromium, the notes in mousepad, an
invoice in evince and a deploy log in a terminal. ``record_history`` then works through them as a
person would (each window in focus for a few seconds, a line typed into the notes and saved) while
the real agent streams: the demo's history is made by the product, never written into the store.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadowdesk.session_bus import start_session_bus
from shadowdesk_common.desktop import VirtualDesktop

REPO = Path(__file__).resolve().parents[1]
WINDOW_DEADLINE_S = 60.0
FIXTURE_DEADLINE_S = 60.0
_HAN_RUN = re.compile(r"([\u3400-\u9fff]+)")
TERMINAL_TITLE = "Terminal - deploy payments-api"
CHROMIUM_FLAGS = [
    "--no-first-run",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=Translate,MediaRouter",
    "--force-renderer-accessibility",  # the pages' text reaches the agent through AT-SPI
]


class OfficeError(RuntimeError):
    """The office desktop cannot open here (a missing app or the fixtures)."""


@dataclass(frozen=True)
class OfficeWindow:
    name: str
    window_id: int


class OfficeDesk:
    def __init__(self, data_dir: Path, desktop: VirtualDesktop) -> None:
        self._dir = data_dir / "office"
        self._desktop = desktop
        self.files: dict[str, Any] = {}
        self.windows: list[OfficeWindow] = []

    @property
    def recorded(self) -> bool:
        """Whether this data directory's first history was already recorded (it is kept, not redone)."""
        return (self._dir / "history-recorded").exists()

    def open(self) -> None:
        """Write the documents and open each in its app; returns once every window is mapped."""
        self.files = self._write_documents()
        missing = [app for app in ("evince", "mousepad", "xterm", "xclip") if shutil.which(app) is None]
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if missing or browser is None:
            names = [*missing, *([] if browser else ["chromium"])]
            raise OfficeError(f"{', '.join(names)} not installed (scripts/setup.sh installs them)")
        start_session_bus(self._dir / "dbus-session", self._desktop.launch)
        apps_env = {"XDG_CONFIG_HOME": str(self._dir / "config")}
        sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
        chromium = [browser, *sandbox, *CHROMIUM_FLAGS, f"--user-data-dir={self._dir / 'chromium'}"]
        pages: list[str] = self.files["pages"]
        for index, page in enumerate(pages):
            argv = [*chromium, *(["--new-window"] if index else []), f"file://{page}"]
            self._desktop.launch(argv, env=apps_env)
            title = _html_title(Path(page))
            self.windows.append(OfficeWindow(title, self._wait(f"{title} - Chromium")))
        self._desktop.launch(["evince", self.files["invoice"]], env=apps_env)
        # evince titles a window "<file> — <the PDF's own title>".
        invoice_title = f"{Path(self.files['invoice']).name} — {self.files['invoice_title']}"
        self.windows.append(OfficeWindow("invoice", self._wait(invoice_title)))
        notes = self.files["notes"]
        self._desktop.launch(["mousepad", "--opening-mode=window", notes], env=apps_env)
        self.windows.append(OfficeWindow("notes", self._wait(f"{notes} - Mousepad")))
        shell = f"cat '{self.files['log']}'; exec bash --norc"
        xterm = ["xterm", "-xrm", "XTerm*allowTitleOps: false", "-fa", "Monospace", "-fs", "13"]
        self._desktop.launch([*xterm, "-T", TERMINAL_TITLE, "-e", "bash", "-c", shell], env=apps_env)
        self.windows.append(OfficeWindow("terminal", self._wait(TERMINAL_TITLE)))

    def record_history(self, dwell_s: float = 4.0) -> None:
        """Work through the desktop as a person would, while the agent streams: every window in focus
        for ``dwell_s``, and a line typed into the notes and saved. Done once per data directory."""
        for window in self.windows:
            self._desktop.activate(window.window_id)
            if window.name == "notes":
                self._type_note()
            time.sleep(dwell_s)  # the time a person spends on a window; the agent senses it meanwhile
        (self._dir / "history-recorded").write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z"), encoding="utf-8")

    def _type_note(self) -> None:
        # Into the focused window (``activate`` waited for it): GTK ignores keys sent to a window.
        self._desktop.xdotool("key", "--clearmodifiers", "ctrl+End", "Return")
        for piece in _HAN_RUN.split(self.files["typed_note"]):
            if _HAN_RUN.fullmatch(piece):
                # Chinese arrives committed, as from an input method: xdotool's remapped keysyms drop
                # characters on a busy machine ("十一月" typed as "十月").
                subprocess.run(
                    ["xclip", "-selection", "clipboard"],
                    input=piece.encode(),
                    env=self._desktop.env,
                    timeout=FIXTURE_DEADLINE_S,
                    check=True,
                )
                self._desktop.xdotool("key", "--clearmodifiers", "ctrl+v")
            elif piece:
                self._desktop.xdotool("type", "--delay", "30", piece)
        self._desktop.xdotool("key", "--clearmodifiers", "ctrl+s")

    def _write_documents(self) -> dict[str, Any]:
        if not (REPO / "demo_apps" / "office.py").exists():
            raise OfficeError("the office desktop runs from a source checkout: demo_apps/ is missing")
        argv = [sys.executable, "-m", "demo_apps.office", "--dir", str(self._dir)]
        try:
            result = subprocess.run(
                argv, cwd=REPO, capture_output=True, text=True, timeout=FIXTURE_DEADLINE_S, check=True
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            raise OfficeError(f"writing the office documents failed: {error}") from error
        files: dict[str, Any] = json.loads(result.stdout)
        return files

    def _wait(self, title: str) -> int:
        """The window titled ``title`` once mapped, maximised as an office worker keeps windows: the
        agent's frames are of the whole screen, so a window in focus shows nothing of the others."""
        window_id = self._desktop.wait_for_window(title, timeout_s=WINDOW_DEADLINE_S)
        self._desktop.xdotool("windowmove", str(window_id), "0", "0")
        self._desktop.xdotool("windowsize", str(window_id), "100%", "100%")
        return window_id


def _html_title(page: Path) -> str:
    text = page.read_text(encoding="utf-8")
    return text.split("<title>", 1)[1].split("</title>", 1)[0]
