"""``shadowdesk up``: the cloud server, the embedded local store and an agent, in one process, and the
admin console beside it (its own process and port, ``python -m admin_console``).

The demo keeps everything under one data directory: the local object store, the agent's spool, a
random token secret made on first run, and the console's user store with one demo user per role (their
passwords are made on first run, kept in ``console-logins.txt`` and printed). The agent attaches to
$DISPLAY, or to a virtual Xvfb desktop that the demo starts, or runs with system metrics only.
The virtual desktop is an office worker's (``shadowdesk.office``): on the first run the demo works
through its apps while the agent streams, and is ready once the first queries it suggests find what
they should. ``scenario="expense"`` opens the expense scenario instead (``shadowdesk.scenario``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from cloud_infer.auth import TokenAuthority
from cloud_infer.config import ServerSettings
from cloud_infer.desktop.config import DesktopSettings
from cloud_infer.server import serve
from recall_store.config import StoreSettings
from session_agent.agent import run_agent
from session_agent.config import DEFAULT_ALLOWED_ACTIONS, REMEDIATION_ACTIONS, AgentSettings
from shadowdesk.office import OfficeDesk, OfficeError
from shadowdesk.scenario import ExpenseScenario, ScenarioError
from shadowdesk.session_bus import SessionBusError
from shadowdesk_common.desktop import VirtualDesktop
from shadowdesk_common.vnc import VncError, VncServer

logger = logging.getLogger(__name__)

DEMO_USER = "demo"
# Console users of the demo, by role; two admins, since a risky action needs a second one's approval.
CONSOLE_USERS = (
    ("ops-admin", "admin"),
    ("ops-admin2", "admin"),
    ("ops-operator", "operator"),
    ("ops-viewer", "viewer"),
)
DEMO_WINDOW_TITLE = "Shadowdesk demo terminal"
HISTORY_DEADLINE_S = 240.0  # the first history's indexing, OCR included, on a 2-core machine
SEARCH_POLL_S = 3.0
DesktopChoice = Literal["auto", "virtual", "current", "none"]
ScenarioChoice = Literal["none", "expense"]


@dataclass(frozen=True)
class TryQuery:
    query: str
    finds: str  # in the title of the window it should find first


@dataclass(frozen=True)
class DemoOptions:
    data_dir: Path
    http_port: int = 8080
    grpc_port: int = 50051
    duration_s: float | None = None
    desktop: DesktopChoice = "auto"
    scenario: ScenarioChoice = "none"
    portal_port: int = 8090
    console_port: int = 8081


def _token_secret(data_dir: Path) -> str:
    path = data_dir / "token-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _console_logins(data_dir: Path) -> str:
    """The demo's console users (made on first run through the console's own ``add-user``) and their
    passwords, as lines of ``user  password  (role)``."""
    logins = data_dir / "console-logins.txt"
    if not logins.exists():
        lines = []
        for username, role in CONSOLE_USERS:
            password = secrets.token_urlsafe(12)
            add_user = [sys.executable, "-m", "admin_console", "add-user", "--username", username]
            subprocess.run(
                [*add_user, "--role", role, "--users-file", str(data_dir / "console-users.json")],
                input=password + "\n",
                text=True,
                check=True,
            )
            lines.append(f"{username}  {password}  ({role})")
        logins.touch(mode=0o600)
        logins.write_text("\n".join(lines) + "\n")
    return logins.read_text()


def _start_console(
    data_dir: Path, tokens: TokenAuthority, max_ttl_s: int, port: int, cloud_url: str
) -> subprocess.Popen[bytes]:
    """The console as its own process; its service token (scope ops_console) is made anew at each start."""
    token_file = data_dir / "console-service-token"
    token_file.touch(mode=0o600)
    token_file.write_text(tokens.issue("admin-console", ["read", "ops_console"], ttl_s=max_ttl_s))
    secret_file = data_dir / "console-session-secret"
    if not secret_file.exists():
        secret_file.touch(mode=0o600)
        secret_file.write_text(secrets.token_urlsafe(32))
    env = {
        **os.environ,
        "SHADOWDESK_CONSOLE_PORT": str(port),
        "SHADOWDESK_CONSOLE_CLOUD_URL": cloud_url,
        "SHADOWDESK_CONSOLE_SERVICE_TOKEN_FILE": str(token_file),
        "SHADOWDESK_CONSOLE_USERS_FILE": str(data_dir / "console-users.json"),
        "SHADOWDESK_CONSOLE_SESSION_SECRET": secret_file.read_text().strip(),
    }
    return subprocess.Popen([sys.executable, "-m", "admin_console"], env=env)


def _wait_for_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def _progress(line: str) -> None:
    sys.stderr.write(f"[demo] {line}\n")
    sys.stderr.flush()


def _open_desktop(data_dir: Path, desktop: VirtualDesktop, office_apps: bool) -> OfficeDesk | None:
    """The office desktop, or one terminal when the office's apps are not installed (or not asked for)."""
    if office_apps:
        office = OfficeDesk(data_dir, desktop)
        try:
            office.open()
            return office
        except (OfficeError, SessionBusError) as exc:
            logger.warning("a terminal in place of the office desktop: %s", exc)
    # allowTitleOps off: the shell's prompt must not retitle the window the demo points at.
    desktop.launch(["xterm", "-xrm", "XTerm*allowTitleOps: false", "-T", DEMO_WINDOW_TITLE])
    desktop.wait_for_window(DEMO_WINDOW_TITLE)
    return None


async def _wait_searchable(
    base: str, token: str, queries: Sequence[TryQuery], deadline_s: float
) -> list[TryQuery]:
    """Poll the search API until each query's first hit is the window it should find; the queries
    still waiting at the deadline."""
    waiting = list(queries)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10.0) as client:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline_s):
                while waiting:
                    for query in list(waiting):
                        with contextlib.suppress(httpx.HTTPError):
                            params: dict[str, str | int] = {"q": query.query, "limit": 1}
                            reply = await client.get("/v1/recall/search", params=params)
                            hits = reply.json()["hits"] if reply.status_code == 200 else []
                            if hits and query.finds in hits[0]["title"]:
                                waiting.remove(query)
                                _progress(f"searchable: {query.query!r} finds {hits[0]['title']!r}")
                    if waiting:
                        await asyncio.sleep(SEARCH_POLL_S)
    return waiting


def _choose_display(choice: DesktopChoice) -> Literal["current", "virtual", "none"]:
    if choice != "auto":
        return choice
    if os.environ.get("DISPLAY"):
        return "current"
    return "virtual" if shutil.which("Xvfb") else "none"


async def run_demo(options: DemoOptions) -> None:
    data_dir = options.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = _token_secret(data_dir)
    server_settings = ServerSettings(
        environment="local",
        token_secret=secret,
        grpc_port=options.grpc_port,
        http_port=options.http_port,
        login_ticket_ttl_s=3600,  # the link printed below stays good for an hour of demo
    )
    tokens = TokenAuthority.from_settings(server_settings)
    store_settings = StoreSettings(backend="local", local_root=data_dir / "store")
    session_id = f"{socket.gethostname()}-demo"

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    mode = _choose_display(options.desktop)
    desktop: VirtualDesktop | None = None
    office: OfficeDesk | None = None
    display = os.environ.get("DISPLAY", "")
    if mode == "virtual":
        desktop = VirtualDesktop()
        desktop.start()
        office_apps = options.scenario == "none"
        if office_apps:
            _progress("opening the office desktop: four pages in Chromium, an invoice, notes, a terminal")
        try:
            office = await asyncio.to_thread(_open_desktop, data_dir, desktop, office_apps)
        except BaseException:
            desktop.stop()
            raise
        display = desktop.display
        # Where scripts/break_desktop.sh finds the desktop it breaks on purpose.
        (data_dir / "display").write_text(display, encoding="utf-8")
    scenario: ExpenseScenario | None = None
    if options.scenario == "expense":
        if mode == "none":
            raise ScenarioError("the expense scenario needs a desktop (--desktop virtual or current)")
        scenario = ExpenseScenario(data_dir, display, options.portal_port)
        try:
            scenario.start(own_bus=mode == "virtual")
        except BaseException:
            scenario.stop()
            if desktop is not None:
                desktop.stop()
            raise
    # The thin client: the desktop's VNC server on a unix socket that only the cloud's relay reaches.
    vnc: VncServer | None = None
    if mode != "none":
        try:
            vnc = VncServer(display)
            vnc.start()
        except VncError as exc:
            logger.warning("no thin client: %s", exc)
            vnc = None
    desktops = DesktopSettings(endpoints={f"{DEMO_USER}/{session_id}": vnc.endpoint} if vnc else {})
    sensors = {"system_metrics", "process_faults"}
    if mode != "none":  # hangs and the desktop's responsiveness need the X display
        sensors |= {"window_focus", "apps", "frames", "desktop_health"}
    if scenario is not None or office is not None:
        sensors |= {"accessibility", "selection"}  # the pages', invoice's and notes' text, copies

    agent_settings = AgentSettings(
        server=f"127.0.0.1:{options.grpc_port}",
        token=tokens.issue(DEMO_USER, ["ingest"], session_id=session_id),
        user_id=DEMO_USER,
        session_id=session_id,
        display=display,
        spool_path=data_dir / "agent-spool.sqlite3",
        sensors=sensors,
        # The demo's desktop lets ops fix it (an admin's approved action, or its user's own fix).
        allowed_actions=DEFAULT_ALLOWED_ACTIONS | REMEDIATION_ACTIONS,
    )
    login = tokens.issue(DEMO_USER, ["login"], grants=["read", "manage"])
    # The CLI, with this demo's secret: it mints new sign-in links and tokens (none is printed here).
    cli = (
        f"SHADOWDESK_ENVIRONMENT=local SHADOWDESK_TOKEN_SECRET=$(cat {data_dir}/token-secret) "
        ".venv/bin/shadowdesk"
    )
    base = f"http://127.0.0.1:{options.http_port}"

    logins = await asyncio.to_thread(_console_logins, data_dir)
    server_task = asyncio.create_task(
        serve(server_settings, store_settings, stop=stop, desktop_settings=desktops), name="server"
    )
    console: subprocess.Popen[bytes] | None = None
    try:
        await asyncio.to_thread(_wait_for_port, options.grpc_port, 30.0)
        agent_task = asyncio.create_task(run_agent(agent_settings, stop), name="agent")
        console = _start_console(
            data_dir, tokens, server_settings.token_max_ttl_s, options.console_port, base
        )
        await asyncio.to_thread(_wait_for_port, options.console_port, 30.0)
        tries = [TryQuery(**entry) for entry in office.files["try"]] if office is not None else []
        if office is not None and not office.recorded:
            _progress("recording a first history: working through each window while the agent streams")
            await asyncio.to_thread(office.record_history)
            _progress("waiting until the first queries find what they should (indexing, OCR)")
            read = tokens.issue(DEMO_USER, ["read"], ttl_s=int(HISTORY_DEADLINE_S) + 60)
            missing = await _wait_searchable(base, read, tries, HISTORY_DEADLINE_S)
            if missing:
                names = [query.query for query in missing]
                logger.warning("not searchable yet after %.0f s: %s", HISTORY_DEADLINE_S, names)
        sys.stderr.write(
            "\nShadowdesk is up.\n"
            + (
                f"  open    : {base}/desk#login={login}\n"
                "            (your desktop and the Shadowdesk sidebar in one tab; single-use sign-in link,\n"
                "            good for an hour; a new one:\n"
                f"             {cli} login --user {DEMO_USER} --url {base} --page desk)\n"
                if vnc is not None
                else f"  sidebar : {base}/sidebar#login={login}\n"
                "            (a single-use sign-in link, good for an hour; a new one:\n"
                f"             {cli} login --user {DEMO_USER} --url {base})\n"
            )
            + f"  desktop : {mode} {display}\n"
            f"  data    : {data_dir}\n"
            f"  token   : TOKEN=$({cli} token --user {DEMO_USER} --scope read)\n"
            f"  search  : curl -H \"Authorization: Bearer $TOKEN\" '{base}/v1/recall/search?q=shadowdesk'\n"
            f'  timeline: curl -H "Authorization: Bearer $TOKEN" {base}/v1/timeline\n'
            + f"  console : http://127.0.0.1:{options.console_port}/  (admin console; sign in as one of:)\n"
            + "".join(f"            {line}\n" for line in logins.splitlines())
            + (scenario.banner() if scenario is not None else "")
            + (f"  try     : {' · '.join(q.query for q in tries)}  (the sidebar's search)\n" if tries else "")
            + "Stop with Ctrl-C.\n\n"
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(options.duration_s):
                await stop.wait()
        stop.set()
        await asyncio.gather(agent_task, server_task)
    finally:
        stop.set()
        if console is not None:
            console.terminate()
            await asyncio.to_thread(console.wait, 30)
        if not server_task.done():
            server_task.cancel()
        if scenario is not None:
            scenario.stop()
        if vnc is not None:
            vnc.stop()
        if desktop is not None:
            desktop.stop()
