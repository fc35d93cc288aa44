"""The portal served by uvicorn in a thread of this process, on 127.0.0.1 and a free port by default."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import httpx
import uvicorn

from demo_apps.expense_portal.app import build_app
from demo_apps.expense_portal.config import Faults, PortalConfig

START_DEADLINE_S = 15.0


class PortalServer:
    """A running portal; a context manager. ``url`` is its address once started."""

    def __init__(self, config: PortalConfig, port: int = 0, host: str = "127.0.0.1") -> None:
        self.config = config
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.url = f"http://{host}:{self._socket.getsockname()[1]}"
        self._server = uvicorn.Server(
            uvicorn.Config(build_app(config), log_level="warning", lifespan="on", access_log=False)
        )
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]})

    def __enter__(self) -> PortalServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + START_DEADLINE_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the expense portal did not start on {self.url}")
            time.sleep(0.05)  # polling interval of a deadline-bounded wait

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)
        self._socket.close()

    def set_faults(self, faults: Faults) -> None:
        """Switch this instance's faults through its admin endpoint, as another process would."""
        response = httpx.put(
            f"{self.url}/admin/faults",
            json=faults.model_dump(),
            headers={"X-Admin-Token": self.config.admin_token},
            timeout=10,
        )
        response.raise_for_status()
