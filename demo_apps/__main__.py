"""``python -m demo_apps --dir DIR [--port P] [--seed S]``: the expense scenario, ready to try.

Writes the invoices, the cost list and the weekly notes under DIR, serves an expense portal on
127.0.0.1 with its database in DIR, prints one JSON line (the portal's URL, its sign-in, its admin
token and the files) and serves until SIGTERM or SIGINT. ``shadowdesk up --scenario expense`` runs it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from demo_apps.expense_portal import PortalConfig, PortalServer
from demo_apps.scenario import prepare

DEMO_USER, DEMO_PASSWORD = "alice", "expenses-2025"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo_apps")
    parser.add_argument("--dir", required=True, type=Path, help="where the files and the database go")
    parser.add_argument("--port", type=int, default=0, help="the portal's port (0: a free one)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    scenario = prepare(args.dir, args.seed)
    config = PortalConfig(database=args.dir / "portal.sqlite3", users={DEMO_USER: DEMO_PASSWORD})
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with PortalServer(config, port=args.port) as server:
        ready = {
            "url": server.url,
            "user": DEMO_USER,
            "password": DEMO_PASSWORD,
            "admin_token": config.admin_token,
            **scenario.to_json(),
        }
        sys.stdout.write(json.dumps(ready, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
