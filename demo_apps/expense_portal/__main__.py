"""``python -m demo_apps.expense_portal``: ``serve`` a portal, or list what it filed (claims, reports).

python -m demo_apps.expense_portal serve --db portal.sqlite3 --port 8090 [--user alice:secret]
    [--drop-field tax] [--error N] [--slow 3] [--modal]
python -m demo_apps.expense_portal claims --db portal.sqlite3     # JSON, one claim per line
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from demo_apps.expense_portal.config import Faults, PortalConfig
from demo_apps.expense_portal.server import PortalServer
from demo_apps.expense_portal.store import PortalDatabase


def _serve(args: argparse.Namespace) -> int:
    users = dict(user.split(":", 1) for user in args.user) if args.user else None
    faults = Faults(drop_field=args.drop_field, error=args.error, slow_s=args.slow, modal=args.modal)
    config = PortalConfig(database=Path(args.db), faults=faults)
    if users:
        config.users = users
    if args.admin_token:
        config.admin_token = args.admin_token
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with PortalServer(config, port=args.port) as server:
        # One JSON line on stdout: where it listens and how to reach its admin endpoints.
        sys.stdout.write(json.dumps({"url": server.url, "admin_token": config.admin_token}) + "\n")
        sys.stdout.flush()
        stop.wait()
    return 0


def _list(args: argparse.Namespace) -> int:
    db = PortalDatabase(Path(args.db))
    try:
        rows = db.claims(args.user) if args.what == "claims" else db.reports(args.user)
        for row in rows:
            sys.stdout.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")
    finally:
        db.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo_apps.expense_portal")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve a portal until interrupted")
    serve.add_argument("--db", required=True, help="the portal's SQLite file (created if missing)")
    serve.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    serve.add_argument("--user", action="append", help="NAME:PASSWORD, repeatable (default alice)")
    serve.add_argument("--admin-token", help="the X-Admin-Token of /admin and /api (default random)")
    serve.add_argument("--drop-field", help="fault: store this claim field empty")
    serve.add_argument("--error", type=int, default=0, help="fault: fail the next N form posts (-1: all)")
    serve.add_argument("--slow", type=float, default=0.0, help="fault: answer every page N seconds late")
    serve.add_argument("--modal", action="store_true", help="fault: a modal notice on every form page")
    serve.set_defaults(func=_serve)
    for what in ("claims", "reports"):
        listing = sub.add_parser(what, help=f"print the {what} filed, as JSON lines")
        listing.add_argument("--db", required=True)
        listing.add_argument("--user", help="only this user's")
        listing.set_defaults(func=_list, what=what)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as exc:  # a bad fault or user given on the command line
        parser.error(str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
