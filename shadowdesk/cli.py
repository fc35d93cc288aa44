"""The ``shadowdesk`` command: ``up`` (all-in-one demo), ``server``, ``agent``, ``console``, ``token``,
``login``, ``revoke``, ``fsck``.

Every subcommand reads its configuration from the environment (see docs/configuration.md); flags only
cover what a person types at a demo. Each command imports what it runs only when it runs: the base install
(every desktop's) has the agent; every other command needs the ``cloud`` extra and says so without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from shadowdesk_common.telemetry import configure_telemetry

CLOUD_EXTRA_INSTALL = "pip install 'shadowdesk[cloud]'"
# A missing module of ours is a broken checkout, not a missing extra: let it raise as it is.
_OUR_PACKAGES = frozenset(
    {"shadowdesk", "shadowdesk_common", "protos", "session_agent", "cloud_infer", "recall_store"}
)


@contextlib.contextmanager
def _cloud_tier(command: str) -> Iterator[None]:
    """Around a command's imports of the cloud tier: a missing third-party module exits naming the extra."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] in _OUR_PACKAGES:
            raise
        raise SystemExit(
            f"shadowdesk {command}: needs the cloud tier, which this install lacks (no module {exc.name!r}); "
            f"install it with: {CLOUD_EXTRA_INSTALL}"
        ) from None


def _server(_: argparse.Namespace) -> int:
    with _cloud_tier("server"):
        from cloud_infer.config import ServerSettings
        from cloud_infer.server import serve
        from recall_store.config import StoreSettings

    telemetry = configure_telemetry("shadowdesk-cloud-infer")
    # Not asyncio.run: it joins the default executor's threads, and one still loading a model or
    # reading the store would hold a stop past its deadline; serve has closed what matters.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(serve(ServerSettings(), StoreSettings()))
    finally:
        telemetry.shutdown()
    # Everything is closed and flushed. Worker threads would otherwise hold the exit
    # (concurrent.futures joins its workers at interpreter exit).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _agent(_: argparse.Namespace) -> int:
    from session_agent.agent import run_agent
    from session_agent.config import AgentSettings

    telemetry = configure_telemetry("shadowdesk-session-agent")
    try:
        asyncio.run(run_agent(AgentSettings()))
    finally:
        telemetry.shutdown()
    return 0


def _console(_: argparse.Namespace) -> int:
    # Its own process and its own imports: the console reaches the cloud through its API only.
    os.execv(sys.executable, [sys.executable, "-m", "admin_console"])


def _token(args: argparse.Namespace) -> int:
    with _cloud_tier("token"):
        from cloud_infer.auth import Scope, TokenAuthority
        from cloud_infer.config import ServerSettings

    by_choice: dict[str, list[Scope]] = {
        "ingest": ["ingest"],
        "read": ["read"],
        "manage": ["read", "manage"],
        "admin": ["read", "admin"],
        "ops_view": ["read", "ops_view"],
        "ops_operate": ["read", "ops_operate"],
        "ops_console": ["read", "ops_console"],
    }
    scopes = by_choice[args.scope]
    token = TokenAuthority.from_settings(ServerSettings()).issue(
        args.user, scopes, session_id=args.session, ttl_s=args.ttl
    )
    sys.stdout.write(token + "\n")
    return 0


def _login(args: argparse.Namespace) -> int:
    with _cloud_tier("login"):
        from shadowdesk.accounts import login_url

    link = login_url(args.user, manage=not args.read_only, base_url=args.url, page=args.page)
    sys.stdout.write(link + "\n")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    with _cloud_tier("revoke"):
        from shadowdesk.accounts import revoke

    sys.stdout.write(
        f"tokens of {args.user} issued before {asyncio.run(revoke(args.user)):.0f} are revoked\n"
    )
    return 0


def _fsck(args: argparse.Namespace) -> int:
    with _cloud_tier("fsck"):
        from shadowdesk.fsck import run_fsck

    telemetry = configure_telemetry("shadowdesk-fsck")
    try:
        return asyncio.run(run_fsck(args.user, repair=args.repair, orphans=args.orphans))
    finally:
        telemetry.shutdown()


def _up(args: argparse.Namespace) -> int:
    with _cloud_tier("up"):
        from shadowdesk.demo import DemoOptions, run_demo

    telemetry = configure_telemetry("shadowdesk-demo")
    try:
        options = DemoOptions(
            data_dir=args.data_dir,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            duration_s=args.duration,
            desktop=args.desktop,
            scenario=args.scenario,
            portal_port=args.portal_port,
            console_port=args.console_port,
        )
        asyncio.run(run_demo(options))
    finally:
        telemetry.shutdown()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shadowdesk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="all-in-one demo: local store, cloud server and an agent on a desktop")
    up.add_argument(
        "--data-dir", type=Path, default=Path(".shadowdesk"), help="where the demo keeps its data"
    )
    up.add_argument("--http-port", type=int, default=8080)
    up.add_argument("--grpc-port", type=int, default=50051)
    up.add_argument("--for", dest="duration", type=float, default=None, help="stop after this many seconds")
    up.add_argument(
        "--desktop",
        choices=["auto", "virtual", "current", "none"],
        default="auto",
        help="auto: $DISPLAY if set, else a virtual Xvfb desktop if Xvfb is installed, else metrics only",
    )
    up.add_argument(
        "--scenario",
        choices=["none", "expense"],
        default="none",
        help="expense: an expense portal, an invoice in evince and a cost list in mousepad on the desktop",
    )
    up.add_argument("--portal-port", type=int, default=8090, help="the expense portal's port")
    up.add_argument("--console-port", type=int, default=8081, help="the admin console's port")
    up.set_defaults(func=_up)

    sub.add_parser("server", help="the cloud tier: gRPC ingest and the HTTP API").set_defaults(func=_server)
    sub.add_parser("agent", help="the session agent inside a desktop").set_defaults(func=_agent)
    sub.add_parser(
        "console", help="the admin console's web app (configure with SHADOWDESK_CONSOLE_*)"
    ).set_defaults(func=_console)

    token = sub.add_parser("token", help="issue an access token signed with SHADOWDESK_TOKEN_SECRET")
    token.add_argument("--user", required=True)
    token.add_argument(
        "--scope",
        choices=["ingest", "read", "manage", "admin", "ops_view", "ops_operate", "ops_console"],
        required=True,
        help="manage and admin also read; admin: an operator's remediation commands to any desktop and "
        "everything of ops; ops_view reads ops data, ops_operate also runs the actions that are not risky; "
        "ops_console: the admin console's service token",
    )
    token.add_argument("--session", help="the desktop session an ingest token is bound to")
    token.add_argument(
        "--ttl", type=int, default=None, help="lifetime in seconds (default and maximum: settings)"
    )
    token.set_defaults(func=_token)

    login = sub.add_parser("login", help="print a single-use sign-in link for a user")
    login.add_argument("--user", required=True)
    login.add_argument("--read-only", action="store_true", help="no erasing, unpausing or retention changes")
    login.add_argument("--url", default=None, help="the server's base URL (default: from the settings)")
    login.add_argument(
        "--page",
        choices=["sidebar", "desk"],
        default="sidebar",
        help="desk: the thin client (the desktop and the sidebar); it needs --read-only unset",
    )
    login.set_defaults(func=_login)

    revoke = sub.add_parser("revoke", help="revoke every token of a user issued until now")
    revoke.add_argument("--user", required=True)
    revoke.set_defaults(func=_revoke)

    fsck = sub.add_parser("fsck", help="check users' spaces: all indexed, nothing erased left anywhere")
    fsck.add_argument("--user", action="append", help="a user to check (repeatable; default: every user)")
    fsck.add_argument("--repair", action="store_true", help="redo erasures that left anything behind")
    fsck.add_argument("--orphans", action="store_true", help="with --repair: delete unreferenced frames")
    fsck.set_defaults(func=_fsck)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
