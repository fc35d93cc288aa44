"""Workflow actions on a real Xvfb desktop with a real session bus, AT-SPI, mousepad, xterm and Chromium;
the last tests drive them through the real agent and its gRPC stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.chromium import chromium_argv
from harness.dbus import SessionBus
from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.agent import Agent
from session_agent.config import AgentSettings
from session_agent.executor import Executor, open_executor
from session_agent.executor.x11 import X11Desktop
from session_agent.privacy import PrivacyRules
from session_agent.spool import Spool
from shadowdesk_common.desktop import VirtualDesktop
from tests.support.command_cloud import CommandCloud, R, command, spooled, wait_result

pytestmark = pytest.mark.e2e

ENGLISH = "Typed by the executor"
CHINESE = "由执行器输入的中文"
SECRET = "Zq7-unique-pass!"
PAGE = """<!doctype html><title>Form</title>
<p>Not clicked</p>
<button onclick="document.querySelector('p').textContent = 'Clicked once'; document.title = 'Clicked'"
  >Press me</button>
<label>Password <input type=password oninput="document.title =
  this.value.split('').reverse().join('') === '{reversed}' ? 'Secret matches' : 'Typing'"></label>
<input type=text aria-label=Search>
<script>setTimeout(() => {{ const b = document.createElement('button'); b.textContent = 'Appeared';
  document.body.append(b) }}, 1500)</script>"""
MOUSEPAD = pb.WindowRef(app_id="mousepad")
CHROMIUM = pb.WindowRef(app_id="chromium")
EDITOR = pb.ElementRef(window=MOUSEPAD, role="text")
PASSWORD = pb.ElementRef(window=CHROMIUM, role="password text")
SEARCH = pb.ElementRef(window=CHROMIUM, role="entry", name="Search")


@dataclass
class Desk:
    desktop: VirtualDesktop
    bus: SessionBus
    mousepad: int
    chromium: int


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    home = tmp_path_factory.mktemp("desk")
    with VirtualDesktop(width=1280, height=800) as desktop, SessionBus(desktop.env) as bus:
        document = home / "notes.txt"
        document.write_text("first line\n", encoding="utf-8")
        desktop.launch(["mousepad", str(document)], env={**bus.app_env, "XDG_CONFIG_HOME": str(home)})
        mousepad = desktop.wait_for_window(f"{document} - Mousepad")
        page = home / "form.html"
        page.write_text(PAGE.format(reversed=SECRET[::-1]), encoding="utf-8")
        desktop.launch(chromium_argv(page.as_uri(), home / "profile"), env=bus.app_env)
        chromium = desktop.wait_for_window("Form - Chromium")
        yield Desk(desktop, bus, mousepad, chromium)


@pytest.fixture
def run(
    desk: Desk, make_settings: Callable[..., AgentSettings], open_spool: Callable[[], Spool]
) -> Iterator[Callable[..., Any]]:
    """``await run(command_id, secret=..., **kind)``: one command through a real executor → its result."""
    settings = make_settings(display=desk.desktop.display, frame_max_width=640)
    spool = open_spool()
    executor: Executor = open_executor(settings, spool, PrivacyRules(), session_bus=desk.bus.address)
    executor.start()

    async def run_one(command_id: str, *, secret: str = "", **kind: Any) -> pb.CommandResult:
        await executor.submit(command(command_id, secret=secret, **kind))
        return await wait_result(spool, command_id, timeout_s=30)

    run_one.spool = spool  # type: ignore[attr-defined]
    yield run_one
    executor.stop()


def step(**action: Any) -> dict[str, pb.WorkflowStep]:
    return {"workflow_step": pb.WorkflowStep(**action)}


def ok(result: pb.CommandResult) -> dict[str, str]:
    assert result.status == R.STATUS_SUCCEEDED, result.error
    return dict(result.observed)


async def test_types_into_mousepad_by_accessibility_identity_and_reads_it_back(
    desk: Desk, run: Callable[..., Any]
) -> None:
    focused = ok(await run("focus", **step(focus_window=pb.FocusWindow(window=MOUSEPAD))))
    assert focused["window_id"] == str(desk.mousepad) and focused["app_id"] == "mousepad"
    typed = ok(await run("type", **step(type_text=pb.TypeText(element=EDITOR, text=ENGLISH, replace=True))))
    assert typed["method"] == "editable_text" and typed["role"] == "text"
    assert ok(await run("read-1", **step(read_element=pb.ReadElement(element=EDITOR))))["value"] == ENGLISH
    # By the path the first result reported: found without a search.
    by_path = pb.ElementRef(window=MOUSEPAD, role="text", path=[int(i) for i in typed["path"].split("/")])
    ok(await run("insert", **step(type_text=pb.TypeText(element=by_path, text=f"\n{CHINESE}"))))
    read = ok(await run("read-2", **step(read_element=pb.ReadElement(element=by_path))))
    assert read["value"].splitlines() == [ENGLISH, CHINESE] or read["value"].splitlines() == [
        CHINESE,
        ENGLISH,
    ]


async def test_clicks_a_button_in_chromium_and_reads_what_it_changed(
    desk: Desk, run: Callable[..., Any]
) -> None:
    button = pb.ElementRef(window=CHROMIUM, role="push button", name="Press me")
    clicked = ok(await run("click", **step(click_element=pb.ClickElement(element=button))))
    assert clicked["method"] == "action:press"
    paragraph = pb.ElementRef(window=CHROMIUM, role="paragraph")
    assert (
        ok(await run("read", **step(read_element=pb.ReadElement(element=paragraph))))["value"]
        == "Clicked once"
    )
    ok(await run("focus", **step(focus_window=pb.FocusWindow(window=CHROMIUM))))
    waited = ok(
        await run(
            "wait",
            **step(
                wait_for=pb.WaitFor(window_focused=pb.WindowRef(title_contains="Clicked"), timeout_ms=5000)
            ),
        )
    )
    assert waited["met"] == "true" and waited["window_id"] == str(desk.chromium)
    appeared = pb.ElementRef(window=CHROMIUM, role="push button", name="Appeared")
    assert ok(await run("appear", **step(wait_for=pb.WaitFor(element_exists=appeared, timeout_ms=10_000))))[
        "met"
    ]
    missing = pb.ElementRef(window=CHROMIUM, role="push button", name="Never there")
    absent = await run("absent", **step(wait_for=pb.WaitFor(element_exists=missing, timeout_ms=800)))
    assert absent.status == R.STATUS_FAILED and absent.observed["met"] == "false"


async def test_password_field_takes_only_the_users_secret_which_stays_out_of_the_spool(
    desk: Desk, run: Callable[..., Any]
) -> None:
    plain = await run("plain", **step(type_text=pb.TypeText(element=PASSWORD, text="guess")))
    assert plain.status == R.STATUS_REFUSED and "password field" in plain.error
    no_secret = await run("no-secret", **step(type_text=pb.TypeText(element=PASSWORD, use_secret=True)))
    assert no_secret.status == R.STATUS_REFUSED
    elsewhere = await run(
        "elsewhere", secret=SECRET, **step(type_text=pb.TypeText(element=SEARCH, use_secret=True))
    )
    assert elsewhere.status == R.STATUS_REFUSED and "only into a password field" in elsewhere.error
    typed = ok(
        await run("typed", secret=SECRET, **step(type_text=pb.TypeText(element=PASSWORD, use_secret=True)))
    )
    assert typed["method"] == "keyboard" and "chars" not in typed, "not even the secret's length"
    title = pb.WindowRef(title_contains="Secret matches")
    ok(await run("check", **step(wait_for=pb.WaitFor(window_focused=title, timeout_ms=5000))))
    read = await run("read", **step(read_element=pb.ReadElement(element=PASSWORD)))
    assert read.status == R.STATUS_REFUSED and "never read" in read.error
    spool: Spool = run.spool  # type: ignore[attr-defined]
    files = [spool.path, spool.path.with_name(spool.path.name + "-wal")]
    assert not any(SECRET.encode() in path.read_bytes() for path in files if path.exists())


async def test_keyboard_typing_where_editable_text_is_missing_and_keys_only_as_chords(
    desk: Desk, run: Callable[..., Any]
) -> None:
    typed = ok(
        await run("type", **step(type_text=pb.TypeText(element=SEARCH, text="Find ÄÖ 42!", replace=True)))
    )
    assert typed["method"] == "keyboard"  # Chromium's inputs have no EditableText interface
    assert (
        ok(await run("read", **step(read_element=pb.ReadElement(element=SEARCH))))["value"] == "Find ÄÖ 42!"
    )
    # More characters the keyboard lacks than it has spare keycodes: mapped a stretch at a time, each
    # before its first key (a key pressed right after its keycode was mapped lost its character).
    many = "北京华信办公用品有限司上海浦东新区世纪大道深圳市南山科技园广州天河路杭州西湖成都锦江武汉江汉"
    assert len(set(many)) > 32
    ok(await run("type-many", **step(type_text=pb.TypeText(element=SEARCH, text=many, replace=True))))
    assert ok(await run("read-many", **step(read_element=pb.ReadElement(element=SEARCH))))["value"] == many
    text = await run("text", **step(press_keys=pb.PressKeys(keys="shift+a")))
    assert text.status == R.STATUS_REFUSED and "TypeText" in text.error
    unknown = await run("unknown", **step(press_keys=pb.PressKeys(keys="ctrl+nosuchkey")))
    assert unknown.status == R.STATUS_FAILED
    ok(await run("select", **step(press_keys=pb.PressKeys(keys="ctrl+a"))))
    ok(await run("delete", **step(press_keys=pb.PressKeys(keys="BackSpace"))))
    assert ok(await run("empty", **step(read_element=pb.ReadElement(element=SEARCH))))["value"] == ""


async def test_clipboard_set_is_pasted_by_an_app_and_an_apps_copy_is_read(
    desk: Desk, run: Callable[..., Any]
) -> None:
    ok(await run("set", **step(set_clipboard=pb.SetClipboard(text="剪贴板 from the cloud"))))
    assert (
        ok(await run("get-own", **step(get_clipboard=pb.GetClipboard())))["value"] == "剪贴板 from the cloud"
    )
    ok(await run("focus", **step(focus_window=pb.FocusWindow(window=MOUSEPAD))))
    ok(await run("clear", **step(type_text=pb.TypeText(element=EDITOR, text="", replace=True))))
    ok(await run("paste", **step(press_keys=pb.PressKeys(keys="ctrl+v"))))
    read = ok(await run("read", **step(read_element=pb.ReadElement(element=EDITOR))))
    assert read["value"] == "剪贴板 from the cloud"
    ok(
        await run(
            "replace", **step(type_text=pb.TypeText(element=EDITOR, text="copied by mousepad", replace=True))
        )
    )
    ok(await run("select", **step(press_keys=pb.PressKeys(keys="ctrl+a"))))
    ok(await run("copy", **step(press_keys=pb.PressKeys(keys="ctrl+c"))))
    assert ok(await run("get", **step(get_clipboard=pb.GetClipboard())))["value"] == "copied by mousepad"


async def test_take_frame_launch_app_and_private_windows(
    desk: Desk, run: Callable[..., Any], make_settings: Callable[..., AgentSettings], tmp_path: Path
) -> None:
    frame = await run("frame", **step(take_frame=pb.TakeFrame()))
    spool: Spool = run.spool  # type: ignore[attr-defined]
    event = next(e for e in spooled(spool, "frame") if e.seq == frame.frame_seq)
    assert event.frame.width == 640 and event.frame.image[:4] == b"RIFF" and frame.frame_seq < spool.last_seq
    # Only a window's rectangle (what a check read by OCR looks at): the window's shape, not the screen's.
    part = await run("frame-window", **step(take_frame=pb.TakeFrame(window=MOUSEPAD)))
    event = next(e for e in spooled(spool, "frame") if e.seq == part.frame_seq)
    with X11Desktop(desk.desktop.display) as x11:
        _, _, width, height = x11.bounds(desk.mousepad)
    assert event.frame.window_id == desk.mousepad and width / height != 1280 / 800
    assert abs(event.frame.width / event.frame.height - width / height) < 0.02, (event.frame.width, width)
    launched = ok(
        await run(
            "launch",
            **step(
                launch_app=pb.LaunchApp(
                    executable="xterm", args=["-T", "launched by a command"], wait_window_ms=15_000
                )
            ),
        )
    )
    assert launched["title"] == "launched by a command" and launched["app_id"] == "xterm"
    shell = await run("shell", **step(launch_app=pb.LaunchApp(executable="/bin/sh")))
    assert shell.status == R.STATUS_REFUSED
    # A private window is neither read nor captured while it has focus.
    private = open_executor(
        make_settings(display=desk.desktop.display, spool_path=tmp_path / "private.sqlite3"),
        Spool(tmp_path / "private.sqlite3", "s", 1 << 20),
        PrivacyRules(exclude_apps=("xterm",), title_patterns=()),
        session_bus=desk.bus.address,
    )
    private.start()
    try:
        await private.submit(command("p-frame", **step(take_frame=pb.TakeFrame())))
        await private.submit(command("p-clip", **step(get_clipboard=pb.GetClipboard())))
        private_spool = Spool(tmp_path / "private.sqlite3", "s", 1 << 20)
        for command_id in ("p-frame", "p-clip"):
            result = await wait_result(private_spool, command_id)
            assert result.status == R.STATUS_REFUSED and "private window" in result.error
        private_spool.close()
    finally:
        private.stop()


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
    stop = asyncio.Event()
    task = asyncio.create_task(Agent(settings).run(stop))
    yield cloud, settings
    stop.set()
    await asyncio.wait_for(task, 15)


async def test_through_the_agent_stream_the_secret_reaches_only_the_password_field(
    agent: tuple[CommandCloud, AgentSettings],
) -> None:
    cloud, settings = agent
    typed = command("typed", secret=SECRET, **step(type_text=pb.TypeText(element=PASSWORD, use_secret=True)))
    started = time.monotonic()
    cloud.send(typed)
    result = await cloud.result("typed")
    assert result.status == R.STATUS_SUCCEEDED, result.error
    assert time.monotonic() - started < 10
    assert "exec:type_text" in cloud.hellos[0].capabilities
    assert SECRET.encode() not in bytes(cloud.received_bytes)
    assert [s.command_id for s in cloud.started("typed")] == ["typed"]
    spool = settings.spool_path
    assert not any(
        SECRET.encode() in path.read_bytes() for path in (spool, Path(f"{spool}-wal")) if path.exists()
    )
