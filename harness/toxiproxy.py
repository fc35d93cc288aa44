"""A real Toxiproxy server for tests: a TCP proxy whose faults (latency, loss, resets) are set through
its HTTP API, to break the link between an agent and the cloud on purpose (this kernel has no netem).

``proxy(name, upstream)`` opens a proxy on a free 127.0.0.1 port; ``add_latency``, ``limit_bandwidth``,
``drop_everything`` and their removals turn a fault on and off while traffic flows.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import TracebackType

import httpx

from harness.minio import REPO_ROOT, free_port
from harness.processes import wait_until

BINARY_ENV = "SHADOWDESK_TOXIPROXY_BINARY"
_HTTP_TIMEOUT_S = 10.0


def toxiproxy_binary() -> str:
    """$SHADOWDESK_TOXIPROXY_BINARY, else whatever scripts/toxiproxy.sh finds or builds."""
    if binary := os.environ.get(BINARY_ENV):
        return binary
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "toxiproxy.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return result.stdout.strip()


class ToxiproxyServer:
    def __init__(self, log_path: Path) -> None:
        self.api_port = free_port()
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=_HTTP_TIMEOUT_S)

    def __enter__(self) -> ToxiproxyServer:
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [toxiproxy_binary(), "-host", "127.0.0.1", "-port", str(self.api_port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._serving, 20, "toxiproxy's API")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._api.close()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)

    def _serving(self) -> bool:
        try:
            return self._api.get("/version").status_code == 200
        except httpx.HTTPError:
            return False

    def proxy(self, name: str, upstream: str) -> str:
        """Open a proxy to ``upstream`` (host:port); its listen address."""
        listen = f"127.0.0.1:{free_port()}"
        reply = self._api.post("/proxies", json={"name": name, "listen": listen, "upstream": upstream})
        reply.raise_for_status()
        return listen

    def add_latency(self, proxy: str, latency_ms: int, jitter_ms: int = 0) -> None:
        """Delay what the proxy passes both ways (each direction by ``latency_ms``)."""
        for stream in ("upstream", "downstream"):
            toxic = {
                "name": f"latency-{stream}",
                "type": "latency",
                "stream": stream,
                "attributes": {"latency": latency_ms, "jitter": jitter_ms},
            }
            self._api.post(f"/proxies/{proxy}/toxics", json=toxic).raise_for_status()

    def remove_latency(self, proxy: str) -> None:
        for stream in ("upstream", "downstream"):
            self._api.delete(f"/proxies/{proxy}/toxics/latency-{stream}").raise_for_status()

    def limit_bandwidth(self, proxy: str, kib_per_s: int, stream: str = "downstream") -> None:
        """Carry at most ``kib_per_s`` KiB a second in ``stream`` (downstream: toward the client)."""
        toxic = {
            "name": f"bandwidth-{stream}",
            "type": "bandwidth",
            "stream": stream,
            "attributes": {"rate": kib_per_s},
        }
        self._api.post(f"/proxies/{proxy}/toxics", json=toxic).raise_for_status()

    def remove_bandwidth_limit(self, proxy: str, stream: str = "downstream") -> None:
        self._api.delete(f"/proxies/{proxy}/toxics/bandwidth-{stream}").raise_for_status()

    def drop_everything(self, proxy: str) -> None:
        """Lose every byte the proxy carries, both ways, until ``restore``: a loss burst as TCP's peers
        see it (the connection stays open, nothing arrives). Toxiproxy works above TCP, so partial
        packet loss (retransmits) cannot be modelled; a burst of total loss can."""
        for stream in ("upstream", "downstream"):
            toxic = {
                "name": f"loss-{stream}",
                "type": "timeout",
                "stream": stream,
                "attributes": {"timeout": 0},
            }
            self._api.post(f"/proxies/{proxy}/toxics", json=toxic).raise_for_status()

    def restore(self, proxy: str) -> None:
        for stream in ("upstream", "downstream"):
            self._api.delete(f"/proxies/{proxy}/toxics/loss-{stream}").raise_for_status()
