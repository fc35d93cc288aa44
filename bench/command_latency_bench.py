"""Command round trip on loopback, against a plain gRPC unary ping measured in the same run.

A real ``shadowdesk server`` (default settings) over a real MinIO; this process plays the sidebar and
the agent. Each round: one ``grpc.health.v1.Health/Check`` on the server's gRPC port and one HTTP
``GET /health`` (the floors), then one command: ``POST /v1/sessions/<s>/commands`` (answered once the
command is durably queued) → the agent's open Ingest stream receives the ``Command`` → it answers at
once with a ``CommandResult`` event → the batch is acked → the results websocket
(``/v1/commands/live``) shows it ``succeeded``. Rounds are sequential, so each is measured unloaded.

The per-user command rate (``SHADOWDESK_LIMIT_COMMANDS_PER_MINUTE``, default 120) is raised to let the
rounds run back to back; nothing else is changed from the defaults.

Run: ``.venv/bin/python -m bench.command_latency_bench --rounds 300 --warmup 30``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import websockets
from grpc_health.v1 import health_pb2, health_pb2_grpc
from websockets.typing import Subprotocol

from bench.report import command_line, fmt, markdown_table, percentile
from cloud_infer.auth import issue_token
from harness.minio import MinioServer
from harness.processes import TOKEN_SECRET, ServerProcess, minio_store_env
from protos.shadowdesk.v1 import ingest_pb2 as pb

logger = logging.getLogger(__name__)

USER, SESSION = "bench-commands", "bench-desk-1"
_METHOD = "/shadowdesk.v1.Ingest/Stream"
_TIMEOUT_S = 30.0
_MS = 1000.0


@dataclass
class Samples:
    grpc_ping: list[float] = field(default_factory=list)
    http_ping: list[float] = field(default_factory=list)
    issued: list[float] = field(default_factory=list)  # POST answered
    delivered: list[float] = field(default_factory=list)  # Command read by the agent
    acked: list[float] = field(default_factory=list)  # the result's batch acked
    visible: list[float] = field(default_factory=list)  # succeeded on the websocket


class BenchAgent:
    """A minimal agent: answers every command with a succeeded CommandResult the moment it arrives."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        token = issue_token(TOKEN_SECRET, USER, "ingest", session_id=SESSION)
        # grpc-stubs types the sync API; the asyncio call takes no request iterator.
        stream: Any = self._channel.stream_stream(
            _METHOD,
            request_serializer=pb.AgentMessage.SerializeToString,
            response_deserializer=pb.CloudMessage.FromString,
        )
        self._call = stream(metadata=(("authorization", f"Bearer {token}"),))
        self._seq = 0
        self.received: dict[str, float] = {}
        self.acked: dict[str, float] = {}
        self._awaiting_ack: dict[int, str] = {}
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        hello = pb.Hello(session_id=SESSION, user_id=USER, agent_version="bench/1")
        await self._call.write(pb.AgentMessage(hello=hello))
        welcome = await self._call.read()
        assert isinstance(welcome, pb.CloudMessage) and welcome.HasField("welcome"), welcome
        self._seq = welcome.welcome.acked_seq
        self._reader = asyncio.create_task(self._read(), name="bench-agent")

    async def _read(self) -> None:
        while True:
            message = await self._call.read()
            if not isinstance(message, pb.CloudMessage):  # grpc.aio.EOF
                return
            now = time.perf_counter()
            if message.HasField("command"):
                command_id = message.command.command_id
                self.received[command_id] = now
                self._seq += 1
                self._awaiting_ack[self._seq] = command_id
                t = time.time_ns()
                result = pb.CommandResult(
                    command_id=command_id,
                    status=pb.CommandResult.STATUS_SUCCEEDED,
                    received_unix_nano=t,
                    started_unix_nano=t,
                    finished_unix_nano=t,
                )
                event = pb.Event(seq=self._seq, time_unix_nano=t, command_result=result)
                await self._call.write(pb.AgentMessage(batch=pb.EventBatch(events=[event])))
            elif message.HasField("ack"):
                for seq in [s for s in self._awaiting_ack if s <= message.ack.acked_seq]:
                    self.acked[self._awaiting_ack.pop(seq)] = now

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self._reader
        await self._channel.close(None)


@contextlib.asynccontextmanager
async def results_socket(server: ServerProcess) -> AsyncIterator[ResultsSocket]:
    token = issue_token(TOKEN_SECRET, USER, "read")
    url = f"ws://127.0.0.1:{server.http_port}/v1/commands/live"
    protocols = [Subprotocol("shadowdesk.v1"), Subprotocol(f"bearer.{token}")]
    async with websockets.connect(url, subprotocols=protocols) as socket:
        results = ResultsSocket(socket)
        task = asyncio.create_task(results.run(), name="bench-results")
        try:
            yield results
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class ResultsSocket:
    def __init__(self, socket: websockets.ClientConnection) -> None:
        self._socket = socket
        self.finished: dict[str, float] = {}
        self._changed = asyncio.Event()

    async def run(self) -> None:
        async for raw in self._socket:
            message = json.loads(raw)
            command = message.get("command", {})
            if command.get("status") == "succeeded":
                self.finished[command["command_id"]] = time.perf_counter()
                self._changed.set()

    async def wait(self, command_id: str) -> float:
        async with asyncio.timeout(_TIMEOUT_S):
            while command_id not in self.finished:
                self._changed.clear()
                await self._changed.wait()
        return self.finished[command_id]


async def measure(server: ServerProcess, rounds: int, warmup: int) -> Samples:
    samples = Samples()
    auth = {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, USER, ['read', 'manage'])}"}
    url = f"/v1/sessions/{SESSION}/commands"
    agent = BenchAgent(server.grpc_address)
    await agent.open()  # the session is known from here on
    health_channel = grpc.aio.insecure_channel(server.grpc_address)
    health = health_pb2_grpc.HealthStub(health_channel)
    try:
        async with (
            httpx.AsyncClient(base_url=server.http_url, timeout=_TIMEOUT_S) as api,
            results_socket(server) as results,
        ):
            for round_ in range(warmup + rounds):
                keep = round_ >= warmup
                started = time.perf_counter()
                await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=_TIMEOUT_S)
                grpc_ms = (time.perf_counter() - started) * _MS
                started = time.perf_counter()
                (await api.get("/health")).raise_for_status()
                http_ms = (time.perf_counter() - started) * _MS

                started = time.perf_counter()
                body = {"notice": {"title": "bench", "body": str(round_)}, "deadline_s": 60}
                answer = await api.post(url, json=body, headers=auth)
                answer.raise_for_status()
                issued = time.perf_counter()
                command_id = answer.json()["command_id"]
                visible = await results.wait(command_id)
                if keep:
                    samples.grpc_ping.append(grpc_ms)
                    samples.http_ping.append(http_ms)
                    samples.issued.append((issued - started) * _MS)
                    samples.delivered.append((agent.received[command_id] - started) * _MS)
                    samples.acked.append((agent.acked[command_id] - started) * _MS)
                    samples.visible.append((visible - started) * _MS)
    finally:
        await agent.close()
        await health_channel.close(None)
    return samples


def render(samples: Samples) -> str:
    rows = [
        ("gRPC unary ping (grpc.health.v1.Health/Check)", samples.grpc_ping),
        ("HTTP GET /health", samples.http_ping),
        ("command: POST answered (durably queued)", samples.issued),
        ("command: Command read by the agent", samples.delivered),
        ("command: its CommandResult acked", samples.acked),
        ("command round trip: succeeded on the results websocket", samples.visible),
    ]
    header = ["from the start of the request to", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    return markdown_table(
        header,
        [
            [
                name,
                str(len(values)),
                fmt(percentile(values, 50), 2),
                fmt(percentile(values, 95), 2),
                fmt(percentile(values, 99), 2),
                fmt(max(values, default=float("nan")), 2),
            ]
            for name, values in rows
        ],
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.command_latency_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=300, help="measured rounds (each: pings + a command)")
    parser.add_argument("--warmup", type=int, default=30, help="rounds run first and not counted")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep MinIO data and the server log here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="shadowdesk-bench-") as tmp:
        work: Path = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with MinioServer(work / "minio") as minio:
            env = {
                **minio_store_env(minio.endpoint, minio.access_key, minio.secret_key),
                "SHADOWDESK_OTEL_EXPORTER": "none",
                "SHADOWDESK_LIMIT_COMMANDS_PER_MINUTE": "1000000",
            }
            with ServerProcess(env, work / "server.log") as server:
                samples = asyncio.run(measure(server, args.rounds, args.warmup))
    sys.stdout.write(
        f"{command_line('bench.command_latency_bench', argv)}\n\n"
        f"loopback; server with default settings over MinIO; {os.cpu_count()} cpus; "
        f"load average {load_before:.2f} before the run\n\n{render(samples)}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
