"""The cloud tests' kit: a minimal agent for the ingest tests, speaking raw bytes so tests can also send
crafted ones; events and tokens as agents send them; a store that fails on demand; the HTTP API on a real
uvicorn and the headers to call it with."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
import httpx
from fastapi import FastAPI
from PIL import Image

from cloud_infer.auth import issue_token
from cloud_infer.http_server import http_server
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.errors import StoreUnavailableError
from recall_store.store import ObjectStore

SECRET = "test-secret-for-shadowdesk-0123456789abcdef"
METHOD = "/shadowdesk.v1.Ingest/Stream"
CALL_TIMEOUT_S = 15.0
NS = 1_000_000_000


def png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def ingest_token(user: str, session: str, **kwargs: Any) -> str:
    return issue_token(SECRET, user, "ingest", session_id=session, **kwargs)


def focus(seq: int, t_ns: int, app_id: str = "xterm", title: str = "shell", window_id: int = 7) -> pb.Event:
    return pb.Event(
        seq=seq,
        time_unix_nano=t_ns,
        window_focus=pb.WindowFocus(
            window_id=window_id, app_id=app_id, wm_class=f"{app_id}.{app_id}", title=title
        ),
    )


def frame(seq: int, t_ns: int, image: bytes | None = None, mime: str = "image/png") -> pb.Event:
    return pb.Event(
        seq=seq,
        time_unix_nano=t_ns,
        frame=pb.ScreenFrame(
            image=png() if image is None else image,
            mime_type=mime,
            width=64,
            height=48,
            dhash=42,
            window_id=7,
        ),
    )


def metrics(seq: int, t_ns: int) -> pb.Event:
    return pb.Event(seq=seq, time_unix_nano=t_ns, metrics=pb.SystemMetrics(cpu_percent=12.5, process_count=9))


def now_ns() -> int:
    return time.time_ns()


def hello(user: str, session: str) -> bytes:
    message = pb.AgentMessage(hello=pb.Hello(session_id=session, user_id=user, agent_version="test/1"))
    return message.SerializeToString()


def batch(events: Iterable[pb.Event], trace_context: dict[str, str] | None = None) -> bytes:
    message = pb.AgentMessage(batch=pb.EventBatch(events=events, trace_context=trace_context or {}))
    return message.SerializeToString()


class AgentStream:
    """One Ingest.Stream call on its own channel; requests go out as raw bytes."""

    def __init__(self, target: str, token: str | None, credentials: grpc.ChannelCredentials | None = None):
        if credentials is None:
            self.channel = grpc.aio.insecure_channel(target)
        else:
            self.channel = grpc.aio.secure_channel(target, credentials)
        metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
        self.call = self.channel.stream_stream(
            METHOD, request_serializer=None, response_deserializer=pb.CloudMessage.FromString
        )(metadata=metadata, timeout=CALL_TIMEOUT_S)

    async def send(self, data: bytes) -> pb.CloudMessage:
        await self.call.write(data)
        reply = await self.call.read()
        assert isinstance(reply, pb.CloudMessage), f"stream ended instead of answering: {reply}"
        return reply

    async def open(self, user: str, session: str) -> pb.Welcome:
        reply = await self.send(hello(user, session))
        assert reply.WhichOneof("body") == "welcome"
        return reply.welcome

    async def ack(self, events: Iterable[pb.Event]) -> int:
        reply = await self.send(batch(events))
        assert reply.WhichOneof("body") == "ack", reply
        return reply.ack.acked_seq

    async def status(self, *writes: bytes) -> tuple[grpc.StatusCode, str]:
        """Write ``writes`` (stopping if the server already ended the call), then return its final status.

        No half-close: every case ends with the server ending the call, and a half-close racing the
        server's status can be reported as INTERNAL by grpc's asyncio client (grpc/grpc#36066).
        """
        try:
            for data in writes:
                await self.call.write(data)
        except grpc.aio.AioRpcError:
            pass
        try:
            while await self.call.read() is not grpc.aio.EOF:
                pass
        except grpc.aio.AioRpcError:
            pass
        return await self.call.code(), await self.call.details() or ""

    async def close(self) -> None:
        await self.channel.close()


class FaultyStore:
    """Wraps a real store; while ``down`` every call fails as a dead backend would."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.down = False
        self.gets: list[str] = []

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailableError("injected outage")

    async def put(
        self, user_id: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        self._check()
        await self.inner.put(user_id, key, data, content_type)

    async def get(self, user_id: str, key: str) -> bytes:
        self._check()
        self.gets.append(key)
        return await self.inner.get(user_id, key)

    async def list_keys(self, user_id: str, prefix: str = "", start_after: str = "") -> list[str]:
        self._check()
        return await self.inner.list_keys(user_id, prefix, start_after)

    async def delete(self, user_id: str, keys: Iterable[str]) -> None:
        self._check()
        await self.inner.delete(user_id, keys)

    async def usage(self, user_id: str) -> int:
        self._check()
        return await self.inner.usage(user_id)

    async def check(self) -> None:
        self._check()
        await self.inner.check()

    async def close(self) -> None:
        await self.inner.close()


async def wait_for(predicate: Any, timeout_s: float = 10.0) -> None:
    """Poll ``predicate()`` (sync or async) until true, or fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def serve_api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` on a real uvicorn on a free port, configured as the server runs it (its settings' TLS,
    limits and header deadline), and a client for it (10 s deadline per request)."""
    settings = app.state.settings.model_copy(update={"http_host": "127.0.0.1", "http_port": 0})
    server = http_server(app, settings)
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started or task.done())
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=httpx.Timeout(10.0)) as client:
        yield client
    server.should_exit = True
    await asyncio.wait_for(task, 10)


def read_auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, user, 'read')}"}


def manage_auth(user: str) -> dict[str, str]:
    """Authorization of a token that may also erase and reduce privacy (read + manage)."""
    return {"Authorization": f"Bearer {issue_token(SECRET, user, ['read', 'manage'])}"}
