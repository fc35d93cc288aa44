"""Recording by demonstration on a real Xvfb desktop: a person's mouse and keyboard (xdotool) in mousepad and
a Chromium form, recorded by the real executor's ``recording`` command into a real spool, and once
through the real agent and its gRPC stream."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.agent import Agent
from session_agent.config import AgentSettings
from session_agent.executor import Executor, open_executor
from session_agent.privacy import PrivacyRules
from session_agent.recorder import command_name
from session_agent.recorder.inputs import ISO_LEFT_TAB
from session_agent.spool import Spool
from tests.support.command_cloud import CommandCloud, R, command, spooled, wait_result
from tests.support.polling import async_wait_until
from tests.support.recorder_desk import COPIED_LINE, Desk

pytestmark = pytest.mark.e2e

A = pb.RecordedAction
RC = pb.RecordingControl
CHROMIUM = pb.WindowRef(app_id="chromium")
VENDOR = pb.ElementRef(window=CHROMIUM, role="entry", name="Vendor")
AMOUNT = pb.ElementRef(window=CHROMIUM, role="entry", name="Amount")
CATEGORY = pb.ElementRef(window=CHROMIUM, role="combo box", name="Category")
MEALS = pb.ElementRef(window=CHROMIUM, role="menu item", name="Meals")
INVOICE = pb.ElementRef(window=CHROMIUM, role="entry", id_attribute="invoice")
PASSWORD = pb.ElementRef(window=CHROMIUM, role="password text")
SUBMIT = pb.ElementRef(window=CHROMIUM, role="push button", name="Submit claim")
CLAIM = pb.ElementRef(window=CHROMIUM, role="paragraph", id_attribute="confirmation")
TYPED_VENDOR = "Qx Vendor Zebra"
TYPED_AMOUNT = "4217.50"
PASSWORD_TEXT = "Pw-unique-77k"


def start(recording_id: str) -> dict[str, Any]:
    return {"recording": RC(recording_id=recording_id, action=RC.ACTION_START)}


def stop(recording_id: str) -> dict[str, Any]:
    return {"recording": RC(recording_id=recording_id, action=RC.ACTION_STOP)}


def kind(action: pb.RecordedAction) -> str:
    return A.Kind.Name(action.kind).removeprefix("KIND_")


def describe(actions: list[pb.RecordedAction]) -> str:
    lines = []
    for action in actions:
        element = action.element
        lines.append(
            f"{kind(action)} app={action.window.app_id} role={element.role!r} name={element.name!r} "
            f"label={element.label!r} id={element.id_attribute!r} value={action.value!r} "
            f"keys={action.keys!r} secret={action.secret} waited={action.waited_ms}"
        )
    return "\n".join(lines)


@pytest.fixture
def run(
    desk: Desk, make_settings: Callable[..., AgentSettings], open_spool: Callable[[], Spool]
) -> Iterator[Callable[..., Any]]:
    """``await run(command_id, **kind)``: one command through a real executor → its result."""
    settings = make_settings(display=desk.desktop.display, recording_wait_min_s=1.0)
    spool = open_spool()
    executor: Executor = open_executor(settings, spool, PrivacyRules(), session_bus=desk.bus.address)
    executor.start()

    async def run_one(command_id: str, **kind: Any) -> pb.CommandResult:
        await executor.submit(command(command_id, **kind))
        return await wait_result(spool, command_id, timeout_s=30)

    run_one.spool = spool  # type: ignore[attr-defined]
    yield run_one
    executor.stop()


def recorded(spool: Spool) -> list[pb.RecordedAction]:
    return [event.recorded for event in spooled(spool, "recorded")]


def spool_bytes(spool: Spool) -> bytes:
    files = [spool.path, spool.path.with_name(spool.path.name + "-wal")]
    return b"".join(path.read_bytes() for path in files if path.exists())


def test_key_commands_are_named_and_text_keys_are_not() -> None:
    from Xlib import XK, X

    assert command_name(XK.XK_s, X.ControlMask) == "ctrl+s"
    assert command_name(XK.XK_c, X.ControlMask | X.Mod2Mask) == "ctrl+c"  # NumLock does not matter
    assert command_name(XK.XK_Return, 0) == "Return"
    assert command_name(ISO_LEFT_TAB, X.ShiftMask) == "shift+Tab"
    assert command_name(XK.XK_F5, 0) == "F5"
    assert command_name(XK.XK_t, X.ControlMask | X.ShiftMask) == "ctrl+shift+t"
    assert command_name(XK.XK_Home, X.ControlMask) == "ctrl+Home"  # by its X name, never 0xff50
    assert command_name(XK.XK_Delete, X.ControlMask | X.ShiftMask) == "ctrl+shift+Delete"
    for keysym, state in [(XK.XK_a, 0), (XK.XK_A, X.ShiftMask), (XK.XK_space, 0), (XK.XK_BackSpace, 0)]:
        assert command_name(keysym, state) is None
    assert command_name(XK.XK_Control_L, X.ControlMask) is None


async def test_a_demonstration_across_mousepad_and_a_form_is_recorded_by_accessibility(
    desk: Desk, run: Callable[..., Any]
) -> None:
    spool: Spool = run.spool  # type: ignore[attr-defined]
    # Not recording: the same kind of input leaves nothing behind.
    desk.activate_and_wait(desk.chromium)
    desk.click(AMOUNT)
    desk.xdotool("type", "--delay", "30", "123")
    desk.xdotool("key", "ctrl+a", "BackSpace", "Tab")
    await asyncio.sleep(0.5)
    assert recorded(spool) == []

    started = ok(await run("start", **start("rec-1")))
    assert started["state"] == "recording"
    again = ok(await run("start-again", **start("rec-1")))
    assert again["already"] == "true"
    other = await run("start-other", **start("rec-2"))
    assert other.status == R.STATUS_FAILED and "rec-1 is on" in other.error

    # Copy the first line in mousepad (the caret starts at its beginning).
    desk.activate_and_wait(desk.mousepad)
    desk.xdotool("key", "shift+End")
    desk.xdotool("key", "ctrl+c")
    await asyncio.sleep(0.6)
    # The form: click into Vendor, type, Tab to Amount, type, pick a category from the drop-down.
    desk.activate_and_wait(desk.chromium)
    desk.click(VENDOR)
    desk.xdotool("type", "--delay", "30", TYPED_VENDOR)
    desk.xdotool("key", "Tab")
    desk.xdotool("type", "--delay", "30", TYPED_AMOUNT)
    await asyncio.sleep(0.3)
    desk.click(CATEGORY)
    await asyncio.sleep(0.8)  # the drop-down opens
    desk.click(MEALS)
    await asyncio.sleep(0.5)
    # Paste the copied line into the invoice field, type the password, submit with Return.
    desk.click(INVOICE)
    desk.xdotool("key", "ctrl+v")
    await asyncio.sleep(0.3)
    desk.click(PASSWORD)
    desk.xdotool("type", "--delay", "30", PASSWORD_TEXT)
    desk.xdotool("key", "Return")
    # The portal answers 1.5 s later; the person waits for it, then clicks the claim number.
    await asyncio.sleep(3.0)
    desk.click(CLAIM)
    await asyncio.sleep(0.5)
    stopped = ok(await run("stop", **stop("rec-1")))
    assert stopped["was_recording"] == "true"

    actions = recorded(spool)
    story = describe(actions)
    assert all(action.recording_id == "rec-1" for action in actions), story
    assert kind(actions[0]) == "STARTED" and kind(actions[-1]) == "STOPPED", story
    assert actions[-1].value == "command"
    # Key commands: named ones only, in order; no text key anywhere.
    keys = [a.keys for a in actions if a.kind == A.KIND_KEY_COMMAND]
    assert keys == ["ctrl+c", "Tab", "ctrl+v", "Return"], story
    assert not [a for a in actions if a.keys and a.kind != A.KIND_KEY_COMMAND], story
    # Focus: mousepad, then Chromium, with their titles.
    focus = [(a.window.app_id, a.window_title) for a in actions if a.kind == A.KIND_FOCUS]
    apps = [app for app, _ in focus]
    assert apps.index("mousepad") < len(apps) - 1 - apps[::-1].index("chromium"), story
    assert any(title.endswith("Mousepad") for app, title in focus if app == "mousepad"), story
    # The copy: from mousepad's text view, with the line.
    copies = [a for a in actions if a.kind == A.KIND_COPY]
    assert len(copies) == 1 and copies[0].value == COPIED_LINE, story
    assert copies[0].window.app_id == "mousepad" and copies[0].element.role == "text", story
    # Clicks name the element under the pointer, with its label, id and bounds in the window.
    clicks = [a.element for a in actions if a.kind == A.KIND_CLICK]
    vendor = next((e for e in clicks if e.id_attribute == "vendor"), None)
    assert vendor is not None, story
    assert (vendor.role, vendor.name, vendor.label) == ("entry", "Vendor", "Vendor"), story
    assert vendor.path and vendor.bounds.width > 0 and 0 <= vendor.bounds.x < 1280, story
    invoice = next((e for e in clicks if e.id_attribute == "invoice"), None)
    assert invoice is not None, story
    assert (invoice.role, invoice.name, invoice.label) == ("entry", "", "Invoice number"), story
    assert any(e.role == "combo box" and e.name == "Category" for e in clicks), story
    assert any(e.role == "menu item" and e.name == "Meals" for e in clicks), story
    assert any(e.role == "password text" and e.label == "Portal password" for e in clicks), story
    assert any(e.id_attribute == "confirmation" for e in clicks), story
    # Fields: their final values, read back; the password only as a secret.
    values = {a.element.id_attribute: a for a in actions if a.kind == A.KIND_FIELD_VALUE}
    assert set(values) == {"vendor", "amount", "category", "invoice", "pin"}, story
    assert values["vendor"].value == TYPED_VENDOR and values["vendor"].element.label == "Vendor", story
    assert values["amount"].value == TYPED_AMOUNT and values["amount"].element.label == "Amount", story
    assert values["category"].value == "Meals", story
    assert values["invoice"].value == COPIED_LINE, story
    assert values["pin"].secret and values["pin"].value == "", story
    # The paste: into the invoice field, with the text pasted.
    pastes = [a for a in actions if a.kind == A.KIND_PASTE]
    assert len(pastes) == 1 and pastes[0].value == COPIED_LINE, story
    assert pastes[0].element.id_attribute == "invoice", story
    # The person waited for the portal's answer before clicking the claim number.
    waits = [a for a in actions if a.kind == A.KIND_WAIT]
    assert waits and 1000 <= waits[-1].waited_ms <= 3500, story
    order = [kind(a) for a in actions]
    assert order.index("WAIT") < len(order) - 1 - order[::-1].index("CLICK"), story
    # Typed text never appears as key data; only the read-back values of ordinary fields.
    raw = spool_bytes(spool)
    assert PASSWORD_TEXT.encode() not in raw
    assert b"Pw-unique" not in raw and TYPED_AMOUNT.encode() in raw
    with_vendor = [
        e for e in spool.read_after(0, 100_000, 1 << 40) if TYPED_VENDOR.encode() in e.SerializeToString()
    ]
    assert [(e.recorded.kind, e.recorded.value) for e in with_vendor] == [
        (A.KIND_FIELD_VALUE, TYPED_VENDOR)
    ], "typed text only as the field's value read back"

    # Stopped: more input records nothing.
    count = len(actions)
    desk.click(VENDOR)
    desk.xdotool("key", "ctrl+a", "Tab")
    await asyncio.sleep(0.5)
    assert len(recorded(spool)) == count
    late = ok(await run("stop-again", **stop("rec-1")))
    assert late["was_recording"] == "false"
    # Nothing of the recording keeps running: no thread, no RECORD context, no event listener.
    assert not [t.name for t in threading.enumerate() if t.name.startswith("recorder")]


async def test_each_copy_after_switching_windows_is_of_the_element_in_its_own_window(
    desk: Desk, run: Callable[..., Any]
) -> None:
    """Back and forth between the form and mousepad, as a person copying line after line: the app's focus
    report can come before the active window changes, and must not put the text view in the form's window."""
    spool: Spool = run.spool  # type: ignore[attr-defined]
    ok(await run("start-switching", **start("rec-switch")))
    for line in range(3):
        desk.activate_and_wait(desk.mousepad)
        # The first line, the second, the first again.
        desk.xdotool("key", "ctrl+Home", *["Down"] * (line % 2), "shift+End", "ctrl+c")
        await asyncio.sleep(0.5)
        desk.activate_and_wait(desk.chromium)
        desk.click(VENDOR)
        await asyncio.sleep(0.3)
    desk.xdotool("key", "Tab")  # the next test's click on Vendor gives it the focus afresh
    ok(await run("stop-switching", **stop("rec-switch")))
    actions = [a for a in recorded(spool) if a.recording_id == "rec-switch"]
    story = describe(actions)
    copied = [a for a in actions if a.kind == A.KIND_COPY]
    assert [a.value for a in copied] == [COPIED_LINE, "second line", COPIED_LINE], story
    copies = [a.element for a in copied]
    # The same text view each time: in mousepad's window, by the same path from its frame.
    assert {(e.window.app_id, e.role, tuple(e.path)) for e in copies} == {
        ("mousepad", "text", tuple(copies[0].path))
    }, story
    assert copies[0].path and copies[0].window.window_id == desk.mousepad, story


async def test_a_recording_stops_by_itself_after_its_longest_time(
    desk: Desk, make_settings: Callable[..., AgentSettings], open_spool: Callable[[], Spool]
) -> None:
    settings = make_settings(display=desk.desktop.display, recording_max_s=1.0)
    spool = open_spool()
    executor = open_executor(settings, spool, PrivacyRules(), session_bus=desk.bus.address)
    executor.start()
    try:
        await executor.submit(command("start", **start("short")))
        assert (await wait_result(spool, "start")).status == R.STATUS_SUCCEEDED
        await async_wait_until(
            lambda: any(a.kind == A.KIND_STOPPED for a in recorded(spool)), timeout_s=10, what="STOPPED"
        )
        assert [a.value for a in recorded(spool) if a.kind == A.KIND_STOPPED] == ["max_duration"]
    finally:
        executor.stop()


def ok(result: pb.CommandResult) -> dict[str, str]:
    assert result.status == R.STATUS_SUCCEEDED, result.error
    return dict(result.observed)


@pytest.fixture
async def agent(
    desk: Desk,
    command_cloud: tuple[CommandCloud, str],
    make_settings: Callable[..., AgentSettings],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[CommandCloud, AgentSettings]]:
    """The real agent (no sensors) on the desk, streaming to a CommandCloud."""
    cloud, target = command_cloud
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", desk.bus.address)
    settings = make_settings(server=target, display=desk.desktop.display)
    stop_agent = asyncio.Event()
    task = asyncio.create_task(Agent(settings).run(stop_agent))
    yield cloud, settings
    stop_agent.set()
    await asyncio.wait_for(task, 15)


async def test_start_and_stop_through_the_agent_stream(
    desk: Desk, agent: tuple[CommandCloud, AgentSettings]
) -> None:
    cloud, _ = agent
    await async_wait_until(lambda: bool(cloud.hellos), what="the agent's Hello")
    assert "exec:recording" in cloud.hellos[0].capabilities
    cloud.send(command("start", **start("rec-stream")))
    assert (await cloud.result("start")).status == R.STATUS_SUCCEEDED
    desk.activate_and_wait(desk.chromium)
    desk.click(VENDOR)
    desk.xdotool("key", "ctrl+a")
    desk.xdotool("type", "--delay", "30", "Streamed Vendor")
    desk.xdotool("key", "Tab")
    await asyncio.sleep(0.5)
    cloud.send(command("stop", **stop("rec-stream")))
    assert (await cloud.result("stop")).status == R.STATUS_SUCCEEDED

    def actions() -> list[pb.RecordedAction]:
        return [event.recorded for event in cloud.of("recorded")]

    await async_wait_until(lambda: any(a.kind == A.KIND_STOPPED for a in actions()), what="STOPPED")
    story = describe(actions())
    assert any(
        a.kind == A.KIND_FIELD_VALUE and a.value == "Streamed Vendor" and a.element.id_attribute == "vendor"
        for a in actions()
    ), story
    assert [a.keys for a in actions() if a.kind == A.KIND_KEY_COMMAND] == ["ctrl+a", "Tab"], story
    # Nothing typed went over the wire as keys: only the field's value read back, once.
    assert bytes(cloud.received_bytes).count(b"Streamed Vendor") == 1
