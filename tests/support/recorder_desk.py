"""The recorder's desk: mousepad and a Chromium form page on a real Xvfb desktop, session bus and AT-SPI
(the ``desk`` fixture in ``tests/session_agent/conftest.py`` opens it), as the recorder and form tests
drive it."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.chromium import chromium_argv
from harness.dbus import SessionBus
from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.executor.elements import Accessibility
from session_agent.executor.protocol import ActionContext
from session_agent.executor.x11 import X11Desktop
from shadowdesk_common.desktop import VirtualDesktop

# A claim form: labels by <label for>, by wrapping, by nearby text only; a select, a password field.
FORM = """<!doctype html><html><head><title>Claim form</title></head><body>
<h1>Expense claim</h1>
<form id=claim onsubmit="event.preventDefault(); document.title = 'Sent';
  setTimeout(() => { const p = document.createElement('p'); p.id = 'confirmation';
  p.textContent = 'Claim number CL-' + (1000 + document.getElementById('amount').value.length);
  document.body.append(p); document.title = 'Claim filed' }, 1500)">
<p><label for=vendor>Vendor</label> <input id=vendor type=text></p>
<p><label>Amount <input id=amount type=text></label></p>
<p><label for=category>Category</label> <select id=category>
  <option>Travel</option><option>Meals</option><option>Office</option></select></p>
<p>Invoice number <input id=invoice type=text></p>
<p><label for=pin>Portal password</label> <input id=pin type=password></p>
<p><button id=submit type=submit>Submit claim</button></p>
</form></body></html>"""
COPIED_LINE = "INV-2024-0117"


@dataclass
class Desk:
    desktop: VirtualDesktop
    bus: SessionBus
    mousepad: int
    chromium: int
    home: Path

    def open_page(self, name: str, html: str, title: str) -> None:
        """Open ``html`` in a new tab of the same Chromium window (a new version of the page)."""
        page = self.home / name
        page.write_text(html, encoding="utf-8")
        argv = chromium_argv(page.as_uri(), self.home / "profile", "--force-renderer-accessibility")
        self.desktop.launch(argv, env=self.bus.app_env)
        self.desktop.wait_for_window(f"{title} - Chromium")

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.desktop.env, check=True, timeout=30)

    def center(self, ref: pb.ElementRef) -> tuple[int, int]:
        """Where a person would click on the element (read through AT-SPI, as the eyes of the test)."""
        context = ActionContext("test", time.monotonic() + 10)
        with X11Desktop(self.desktop.display) as x11, Accessibility(self.bus.address) as a11y:
            return a11y.center(a11y.find(x11, ref, context), context)

    def activate_and_wait(self, window_id: int) -> None:
        self.desktop.activate(window_id)

    def click(self, ref: pb.ElementRef) -> None:
        x, y = self.center(ref)
        self.xdotool("mousemove", str(x), str(y), "click", "1")
