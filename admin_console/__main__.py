"""``python -m admin_console``: serve the console (``shadowdesk console`` runs this), or ``add-user``.

The console runs as its own process, so nothing of ours imports it (tests/test_layering.py).
``add-user`` reads the password from stdin, so it is never in a process list or a shell history.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from admin_console.config import ConsoleSettings
from admin_console.identity import ROLES, add_user
from admin_console.server import serve
from shadowdesk_common.telemetry import configure_telemetry


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m admin_console", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the console (the default); configure with SHADOWDESK_CONSOLE_*")
    user = sub.add_parser("add-user", help="add or update a user of the local user store")
    user.add_argument("--users-file", type=Path, required=True)
    user.add_argument("--username", required=True)
    user.add_argument("--role", choices=ROLES, required=True)
    args = parser.parse_args(argv)
    if args.command == "add-user":
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            parser.error("give the password on stdin")
        add_user(args.users_file, args.username, args.role, password)
        return 0
    telemetry = configure_telemetry("shadowdesk-admin-console")
    try:
        asyncio.run(serve(ConsoleSettings()))  # the session secret comes from the environment
    finally:
        telemetry.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
