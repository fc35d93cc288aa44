"""The admin console as tests and benchmarks run it: ``shadowdesk console`` against a real server, with
users of the local store (made through the console's own ``add-user``) and an ``ops_console`` token."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from cloud_infer.auth import issue_token
from harness.minio import free_port
from harness.processes import TOKEN_SECRET, ServerProcess, ShadowdeskProcess, wait_until_serving

SESSION_SECRET = "console-test-session-secret-0123456789"


class ConsoleProcess(ShadowdeskProcess):
    """``users``: username -> (role, password)."""

    def __init__(self, server: ServerProcess, home: Path, users: Mapping[str, tuple[str, str]]) -> None:
        self.port = free_port()
        self.users = dict(users)
        self._home = home
        env = {
            "SHADOWDESK_CONSOLE_PORT": str(self.port),
            "SHADOWDESK_CONSOLE_CLOUD_URL": server.http_url,
            "SHADOWDESK_CONSOLE_SERVICE_TOKEN_FILE": str(home / "console-service-token"),
            "SHADOWDESK_CONSOLE_USERS_FILE": str(home / "console-users.json"),
            "SHADOWDESK_CONSOLE_SESSION_SECRET": SESSION_SECRET,
        }
        super().__init__("console", env, home / "console.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        for username, (role, password) in self.users.items():
            add_user = [sys.executable, "-m", "admin_console", "add-user", "--username", username]
            subprocess.run(
                [*add_user, "--role", role, "--users-file", str(self._home / "console-users.json")],
                input=password + "\n",
                text=True,
                check=True,
            )
        token = issue_token(TOKEN_SECRET, "admin-console", ["read", "ops_console"])
        (self._home / "console-service-token").write_text(token)
        super().start()
        wait_until_serving(f"{self.url}/health", timeout_s, lambda: self.running, self.log)
