"""The whole server process in staging (TLS on gRPC and HTTP, SIGTERM) and gRPC over mutual TLS."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from cloud_infer.app import build_app
from cloud_infer.config import ServerSettings
from cloud_infer.services import Services
from harness.minio import free_port
from tests.support.cloud import SECRET, AgentStream, FaultyStore, ingest_token, metrics, now_ns, serve_api
from tests.support.ingest_server import start_ingest

DOC_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
START_DEADLINE_S = 30.0
STOP_DEADLINE_S = 15.0
SERVE = (
    "import asyncio, logging\n"
    "from cloud_infer.config import ServerSettings\n"
    "from cloud_infer.server import serve\n"
    "from recall_store.config import StoreSettings\n"
    "logging.basicConfig(level=logging.INFO)\n"
    "asyncio.run(serve(ServerSettings(), StoreSettings()))\n"
)


class ServerProcess:
    """A staging server: a real secret, TLS on both ports with the test CA's server certificate."""

    def __init__(self, store_root: Path, pki: Path) -> None:
        self.grpc_port, self.http_port = free_port(), free_port()
        self.pki = pki
        env = {
            **os.environ,
            "SHADOWDESK_GRPC_PORT": str(self.grpc_port),
            "SHADOWDESK_HTTP_PORT": str(self.http_port),
            "SHADOWDESK_TOKEN_SECRET": SECRET,
            "SHADOWDESK_ENVIRONMENT": "staging",
            "SHADOWDESK_TLS_CERT": str(pki / "server.pem"),
            "SHADOWDESK_TLS_KEY": str(pki / "server.key"),
            "SHADOWDESK_SHUTDOWN_GRACE_S": "1",
            "SHADOWDESK_STORE_BACKEND": "local",
            "SHADOWDESK_STORE_LOCAL_ROOT": str(store_root),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.kill()  # a server that never got healthy must not outlive its test
            raise

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"server exited: {self.process.communicate()[1]}"
            try:
                if self.https("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not healthy within {START_DEADLINE_S}s")

    def https(self, path: str) -> httpx.Response:
        verify = ssl.create_default_context(cafile=self.pki / "ca.pem")
        return httpx.get(f"https://127.0.0.1:{self.http_port}{path}", timeout=2, verify=verify)

    def agent(self, user: str, session: str) -> AgentStream:
        credentials = grpc.ssl_channel_credentials((self.pki / "ca.pem").read_bytes())
        return AgentStream(f"127.0.0.1:{self.grpc_port}", ingest_token(user, session), credentials)

    def terminate(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=STOP_DEADLINE_S)
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=STOP_DEADLINE_S)


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def server_process(store_root: Path, pki: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(store_root, pki)
    yield process
    process.kill()


async def test_the_schema_and_docs_are_served_in_local_mode_only(
    settings: ServerSettings, store: FaultyStore
) -> None:
    assert settings.environment == "local"
    async with serve_api(build_app(settings, Services.create(settings, store))) as local:
        schema = await local.get("/openapi.json")
        assert schema.status_code == 200 and schema.json()["info"]["title"] == "Shadowdesk"
        docs = await local.get("/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text
        assert (await local.get("/docs/oauth2-redirect")).status_code == 200
        assert (await local.get("/redoc")).status_code == 404, "ReDoc is off in every mode"
    production = settings.model_copy(update={"environment": "production"})  # any mode but local
    async with serve_api(build_app(production, Services.create(production, store))) as api:
        for path in DOC_PATHS:
            assert (await api.get(path)).status_code == 404, path


@pytest.mark.slow
async def test_serve_runs_both_servers_and_stops_cleanly_on_sigterm(
    server_process: ServerProcess, store_root: Path, pki: Path
) -> None:
    user, session, t0 = "ann@example.com", "desk-1", now_ns()
    # Both ports speak TLS only: plain HTTP gets no answer.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{server_process.http_port}/health", timeout=2)
    for path in DOC_PATHS:  # no public schema or docs outside local
        assert server_process.https(path).status_code == 404, path
    agent = server_process.agent(user, session)
    assert (await agent.open(user, session)).acked_seq == 0
    assert await agent.ack([metrics(1, t0), metrics(2, t0 + 1)]) == 2

    code, stderr = server_process.terminate()
    stream_code, _ = await agent.status()
    await agent.close()
    assert code == 0, stderr
    assert "stopping" in stderr
    assert stream_code != grpc.StatusCode.OK

    # A new process over the same store resumes the session where the old one left it.
    restarted = ServerProcess(store_root, pki)
    try:
        agent = restarted.agent(user, session)
        assert (await agent.open(user, session)).acked_seq == 2
        await agent.close()
    finally:
        code, stderr = restarted.terminate()
    assert code == 0, stderr


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)


def _issue_cert(directory: Path, name: str, san: str | None) -> tuple[Path, Path]:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    _openssl(
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key,
        "-out",
        csr,
        "-subj",
        f"/CN={name}",
    )
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        directory / "ca.pem",
        "-CAkey",
        directory / "ca.key",
        "-CAcreateserial",
        "-out",
        cert,
        "-days",
        "1",
        "-extfile",
        extensions,
    )
    return cert, key


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        tmp_path / "ca.key",
        "-out",
        tmp_path / "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
    )
    _issue_cert(tmp_path, "server", "IP:127.0.0.1")
    _issue_cert(tmp_path, "agent", None)
    return tmp_path


async def test_mutual_tls_admits_only_agents_with_a_client_certificate(
    pki: Path, settings: ServerSettings, store: FaultyStore
) -> None:
    tls_settings = settings.model_copy(
        update={
            "tls_cert": pki / "server.pem",
            "tls_key": pki / "server.key",
            "tls_client_ca": pki / "ca.pem",
        }
    )
    running = await start_ingest(tls_settings, store)
    target = f"127.0.0.1:{running.port}"
    ca = (pki / "ca.pem").read_bytes()
    user, session = "ann@example.com", "desk-tls"
    try:
        with_cert = grpc.ssl_channel_credentials(
            ca, (pki / "agent.key").read_bytes(), (pki / "agent.pem").read_bytes()
        )
        agent = AgentStream(target, ingest_token(user, session), with_cert)
        assert (await agent.open(user, session)).acked_seq == 0
        assert await agent.ack([metrics(1, now_ns())]) == 1
        await agent.close()

        anonymous = AgentStream(target, ingest_token(user, session), grpc.ssl_channel_credentials(ca))
        code, _ = await anonymous.status(b"")
        await anonymous.close()
        assert code == grpc.StatusCode.UNAVAILABLE

        plaintext = AgentStream(target, ingest_token(user, session))
        code, _ = await plaintext.status(b"")
        await plaintext.close()
        assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.server.stop(None)
