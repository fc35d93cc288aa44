"""SelectOption, FileExists, FindText, WaitFor.text_in_window and the element fallbacks (path → role+name →
id → label → bounds) on a real Xvfb desktop with AT-SPI and a Chromium form page, through a real executor."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.config import AgentSettings
from session_agent.executor import Executor, open_executor
from session_agent.privacy import PrivacyRules
from session_agent.spool import Spool
from tests.support.command_cloud import R, command, wait_result
from tests.support.recorder_desk import FORM, Desk

pytestmark = pytest.mark.e2e

CHROMIUM = pb.WindowRef(app_id="chromium")
CATEGORY = pb.ElementRef(window=CHROMIUM, role="combo box", name="Category")
VENDOR = pb.ElementRef(window=CHROMIUM, role="entry", name="Vendor")


@pytest.fixture
def run(
    desk: Desk, make_settings: Callable[..., AgentSettings], open_spool: Callable[[], Spool], tmp_path: Path
) -> Iterator[Callable[..., Any]]:
    settings = make_settings(display=desk.desktop.display, temp_dir=tmp_path)
    spool = open_spool()
    executor: Executor = open_executor(settings, spool, PrivacyRules(), session_bus=desk.bus.address)
    executor.start()

    async def run_one(command_id: str, **action: Any) -> pb.CommandResult:
        await executor.submit(command(command_id, workflow_step=pb.WorkflowStep(**action)))
        return await wait_result(spool, command_id, timeout_s=30)

    yield run_one
    executor.stop()


def ok(result: pb.CommandResult) -> dict[str, str]:
    assert result.status == R.STATUS_SUCCEEDED, result.error
    return dict(result.observed)


def new_version(desk: Desk) -> None:
    """The portal's next version: the Vendor field is labelled "Supplier" now, its id is the same."""
    html = FORM.replace("<title>Claim form</title>", "<title>Claim form v2</title>").replace(
        "<label for=vendor>Vendor</label>", "<label for=vendor>Supplier</label>"
    )
    assert "Supplier" in html
    desk.open_page("claim-v2.html", html, "Claim form v2")


async def test_select_option_picks_an_entry_and_reads_it_back(desk: Desk, run: Callable[..., Any]) -> None:
    picked = ok(await run("meals", select_option=pb.SelectOption(element=CATEGORY, option="Meals")))
    assert picked["value"] == "Meals" and picked["method"] == "action" and picked["found_by"] == "role_name"
    again = ok(await run("office", select_option=pb.SelectOption(element=CATEGORY, option="Office")))
    assert again["value"] == "Office"
    missing = await run("none", select_option=pb.SelectOption(element=CATEGORY, option="Lunar travel"))
    assert missing.status == R.STATUS_FAILED and "Lunar travel" in missing.error
    empty = await run("empty", select_option=pb.SelectOption(element=CATEGORY))
    assert empty.status == R.STATUS_REFUSED


async def test_file_exists_only_under_home_or_temp(run: Callable[..., Any], tmp_path: Path) -> None:
    report = tmp_path / "expense report.pdf"
    report.write_bytes(b"%PDF-1.4\n" + b"x" * 1000)
    found = ok(await run("there", file_exists=pb.FileExists(path=str(report))))
    assert found == {"exists": "true", "path": str(report), "kind": "file", "size": "1009"}
    gone = ok(await run("gone", file_exists=pb.FileExists(path=str(tmp_path / "nope.pdf"))))
    assert gone["exists"] == "false"
    for index, outside in enumerate(
        ["/etc/passwd", f"{tmp_path}/../../../../etc/passwd", "relative.txt", ""]
    ):
        refused = await run(f"outside-{index}", file_exists=pb.FileExists(path=outside))
        assert refused.status == R.STATUS_REFUSED, outside
    link = tmp_path / "link-out"
    os.symlink("/etc/passwd", link)
    through_link = await run("link", file_exists=pb.FileExists(path=str(link)))
    assert through_link.status == R.STATUS_REFUSED and "home and temp" in through_link.error
    home = ok(await run("home", file_exists=pb.FileExists(path="~")))
    assert home["kind"] == "directory"


async def test_find_text_and_wait_for_text_in_window(desk: Desk, run: Callable[..., Any]) -> None:
    found = ok(await run("heading", find_text=pb.FindText(window=CHROMIUM, text="Expense claim")))
    assert found["found"] == "true" and found["text"] == "Expense claim" and found["app_id"] == "chromium"
    absent = ok(await run("absent", find_text=pb.FindText(window=CHROMIUM, text="Claim number")))
    assert absent["found"] == "false"
    bad = await run("bad", find_text=pb.FindText(window=CHROMIUM, pattern="(a)\\1"))
    assert bad.status == R.STATUS_REFUSED and "RE2" in bad.error
    both = await run("both", find_text=pb.FindText(window=CHROMIUM, text="a", pattern="a"))
    assert both.status == R.STATUS_REFUSED
    # Submit: the page shows a claim number 1.5 s later; waited for, then read by a pattern.
    clicked = time.monotonic()
    ok(
        await run(
            "submit",
            click_element=pb.ClickElement(element=pb.ElementRef(window=CHROMIUM, id_attribute="submit")),
        )
    )
    click_ms = (time.monotonic() - clicked) * 1000
    shown = pb.FindText(window=CHROMIUM, pattern=r"Claim number (CL-\d+)")
    waited = ok(await run("wait", wait_for=pb.WaitFor(text_in_window=shown, timeout_ms=10_000)))
    assert waited["met"] == "true" and waited["match"].startswith("CL-")
    # The wait covered what was left of the 1.5 s (less when a loaded machine made the click slow).
    assert int(waited["waited_ms"]) >= 1000 - click_ms
    read = ok(await run("read", find_text=shown))
    assert read["match"] == waited["match"] and read["text"] == f"Claim number {read['match']}"
    never = pb.FindText(window=CHROMIUM, text="never shown")
    timed_out = await run("never", wait_for=pb.WaitFor(text_in_window=never, timeout_ms=600))
    assert timed_out.status == R.STATUS_FAILED and timed_out.observed["met"] == "false"


async def test_an_element_renamed_is_found_by_id_label_or_bounds(desk: Desk, run: Callable[..., Any]) -> None:
    typed = ok(await run("by-name", type_text=pb.TypeText(element=VENDOR, text="Before", replace=True)))
    assert typed["found_by"] == "role_name"
    path = [int(index) for index in typed["path"].split("/")]
    pinned = pb.ElementRef(window=CHROMIUM, role="entry", name="Vendor", path=path)
    # Chromium publishes typed text to its accessibility tree a moment after the keys (longer under load).
    for attempt in range(20):
        by_path = ok(await run(f"by-path-{attempt}", read_element=pb.ReadElement(element=pinned)))
        if by_path["value"]:
            break
        await asyncio.sleep(0.25)
    assert by_path["found_by"] == "path" and by_path["value"] == "Before"
    new_version(desk)
    # The recorded name no longer matches (and the path leads to a field of another name); the id does.
    by_id = pb.ElementRef(window=CHROMIUM, role="entry", name="Vendor", path=path, id_attribute="vendor")
    typed = ok(await run("by-id", type_text=pb.TypeText(element=by_id, text="After", replace=True)))
    assert typed["found_by"] == "id_attribute" and typed["name"] == "Supplier"
    # Without the id: the label, as the page shows it now.
    by_label = pb.ElementRef(window=CHROMIUM, role="entry", name="Vendor", label="Supplier")
    read = ok(await run("by-label", read_element=pb.ReadElement(element=by_label)))
    assert read["found_by"] == "label" and read["value"] == "After"
    # Neither id nor a label that still matches: where it is in the window (an info bar above a page
    # moves it, so the bounds are taken from this version: the fallback, not the layout, is tested).
    bounds = recorded_bounds(desk, pb.ElementRef(window=CHROMIUM, role="entry", name="Supplier"))
    by_bounds = pb.ElementRef(window=CHROMIUM, role="entry", name="Vendor", label="Vendor", bounds=bounds)
    read = ok(await run("by-bounds", read_element=pb.ReadElement(element=by_bounds)))
    assert read["found_by"] == "bounds" and read["value"] == "After"
    # An element with another id there is another field (a page laid out alike), never this one.
    other = pb.ElementRef(window=CHROMIUM, role="entry", name="Total", id_attribute="total", bounds=bounds)
    elsewhere = await run("other-id", read_element=pb.ReadElement(element=other))
    assert elsewhere.status == R.STATUS_FAILED and "id 'total'" in elsewhere.error
    # Nothing that matches is not found, by any of them.
    lost = pb.ElementRef(window=CHROMIUM, role="entry", name="Vendor", id_attribute="nope", label="Nope")
    missing = await run("lost", read_element=pb.ReadElement(element=lost))
    assert missing.status == R.STATUS_FAILED and "id 'nope'" in missing.error


def recorded_bounds(desk: Desk, target: pb.ElementRef) -> pb.Rect:
    """The element's bounds in its window, as a recording keeps them."""
    import time

    from session_agent.executor.elements import Accessibility
    from session_agent.executor.identity import element_ref
    from session_agent.executor.protocol import ActionContext
    from session_agent.executor.x11 import X11Desktop

    context = ActionContext("test", time.monotonic() + 10)
    with X11Desktop(desk.desktop.display) as x11, Accessibility(desk.bus.address) as a11y:
        element = a11y.find(x11, target, context)
        frame = a11y.frame(element.window)
        assert frame is not None
        ref = element_ref(a11y, element, frame, x11.origin(element.window.window_id), context)
    assert ref.bounds.width > 0 and ref.label == "Supplier" and ref.id_attribute == "vendor"
    return ref.bounds
