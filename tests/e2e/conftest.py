"""Fixtures of the end-to-end tests that drive the sidebar in a real headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from harness.chromium import chromium_argv


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    # The test Chromium's own flags, less the profile: Playwright gives each launch a fresh one.
    argv = chromium_argv("about:blank", tmp_path_factory.mktemp("profile"))
    flags = [arg for arg in argv[1:-1] if not arg.startswith("--user-data-dir=")]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=argv[0], args=flags, headless=True)
        yield launched
        launched.close()
