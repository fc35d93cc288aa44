"""The command line of a real Chromium window on a test or bench desktop."""

from __future__ import annotations

import shutil
from pathlib import Path

# Quiet, sandbox-free (tests run as root in containers) and without network chatter or GPU.
_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--disable-features=Translate,MediaRouter",
]


def chromium_argv(url: str, profile_dir: Path, *extra: str) -> list[str]:
    """argv opening ``url`` in a new Chromium window with its own profile; raise if none is installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise RuntimeError("chromium is not installed (scripts/setup.sh --test installs it)")
    return [browser, *_FLAGS, f"--user-data-dir={profile_dir}", *extra, url]
