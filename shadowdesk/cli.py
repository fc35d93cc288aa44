"""The ``shadowdesk`` command: ``up`` (all-in-one demo), ``server``, ``agent``, ``token``.

Every subcommand reads its configuration from the environment (see docs/configuration.md); flags only
cover what a person types at a demo.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from shadowdesk.telemetry import configure_telemetry


def _server(_: argparse.Namespace) -> int:
    from cloud_infer.config import ServerSettings
    from cloud_infer.server import serve
    from recall_store.config import StoreSettings

    telemetry = configure_telemetry("shadowdesk-cloud-infer")
    try:
        asyncio.run(serve(ServerSettings(), StoreSettings()))
    finally:
        telemetry.shutdown()
    return 0


def _agent(_: argparse.Namespace) -> int:
    from session_agent.agent import run_agent
    from session_agent.config import AgentSettings

    telemetry = configure_telemetry("shadowdesk-session-agent")
    try:
        asyncio.run(run_agent(AgentSettings()))
    finally:
        telemetry.shutdown()
    return 0


def _token(args: argparse.Namespace) -> int:
    from cloud_infer.auth import issue_token
    from cloud_infer.config import ServerSettings

    settings = ServerSettings()
    token = issue_token(
        settings.token_secret.get_secret_value(),
        user_id=args.user,
        scope=args.scope,
        session_id=args.session,
        ttl_s=args.ttl,
    )
    sys.stdout.write(token + "\n")
    return 0


def _up(args: argparse.Namespace) -> int:
    from shadowdesk.demo import DemoOptions, run_demo

    telemetry = configure_telemetry("shadowdesk-demo")
    try:
        options = DemoOptions(
            data_dir=args.data_dir,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            duration_s=args.duration,
            desktop=args.desktop,
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
    up.set_defaults(func=_up)

    sub.add_parser("server", help="the cloud tier: gRPC ingest and the HTTP API").set_defaults(func=_server)
    sub.add_parser("agent", help="the session agent inside a desktop").set_defaults(func=_agent)

    token = sub.add_parser("token", help="issue an access token signed with SHADOWDESK_TOKEN_SECRET")
    token.add_argument("--user", required=True)
    token.add_argument("--scope", choices=["ingest", "read"], required=True)
    token.add_argument("--session", help="the desktop session an ingest token is bound to")
    token.add_argument("--ttl", type=int, default=30 * 24 * 3600, help="lifetime in seconds")
    token.set_defaults(func=_token)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
