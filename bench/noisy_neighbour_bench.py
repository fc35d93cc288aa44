"""Noisy neighbour: one tenant floods each shared resource; another tenant's search latency, compared.

A real ``shadowdesk server`` (default settings: local store, Recall, the embedded LLM, default per-user
limits) holds two users' histories, ingested through gRPC (window titles, accessibility text and
screen frames, so OCR and the index hold real rows). Bob searches his own history one query after
another; first with the server otherwise idle (the baseline), then while Mallory floods, from a
separate process with ``--flooders`` concurrent loops, one resource at a time and then all at once:

* ``embeddings`` — 64 texts of 4,000 characters per request to ``/v1/llm/embeddings``;
* ``search``, ``timeline``, ``export``, ``frames`` — her own reads as fast as answers come;
* ``ingest`` — batches of screen frames over gRPC (OCR work) as fast as acks come;
* ``ask`` — questions over the recall websocket (the LLM generating).

Each row gives Mallory's answered and refused (429 / RESOURCE_EXHAUSTED) requests a second, and Bob's
search p50/p95 with the ratio of that p95 to the baseline p95 of the same run (target: ≤ 2).

Run: ``.venv/bin/python -m bench.noisy_neighbour_bench``
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import Queue
from pathlib import Path
from typing import Any

import grpc
import httpx
import websockets
from PIL import Image, ImageDraw, ImageFont

from bench.report import command_line, fmt, markdown_table, percentile
from cloud_infer.auth import issue_token
from harness.processes import TOKEN_SECRET, ServerProcess
from protos.shadowdesk.v1 import ingest_pb2 as pb

BOB, MALLORY = "bob-neighbour", "mallory-flood"
FLOODS = ("embeddings", "search", "timeline", "export", "frames", "ingest", "ask")
_FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
_TOPICS = [
    ("invoice", ["Invoice INV-{n} from Acme Corp", "Total due {n}.00 USD", "Payment terms net 30"]),
    ("kafka", ["Kafka broker config {n}", "log retention hours 168", "replication factor 3"]),
    ("travel", ["Trip request TR-{n} to Shanghai", "Hotel near the Bund", "Approval by finance"]),
    ("recipe", ["Recipe {n}: mapo tofu", "Sichuan pepper and doubanjiang", "Simmer ten minutes"]),
    ("report", ["Weekly report week {n}", "Shipped the sidebar search", "Next: workflow macros"]),
]
_QUERIES = ["invoice total due", "kafka retention", "trip to shanghai", "mapo tofu recipe", "weekly report"]
_NS = 1_000_000_000
_BOB_PACE_S = 0.5


@dataclass
class FloodResult:
    ok: int = 0
    refused: int = 0
    failed: int = 0


def _screen(lines: list[str]) -> bytes:
    image = Image.new("RGB", (800, 480), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(_FONT, 22)
    for i, line in enumerate(lines):
        draw.text((30, 30 + i * 34), line, fill=(20, 20, 20), font=font)
    out = io.BytesIO()
    image.save(out, format="WEBP", quality=60)
    return out.getvalue()


def _history(start_ns: int, moments: int, frames_every: int) -> list[pb.Event]:
    events: list[pb.Event] = []
    for m in range(moments):
        topic, lines = _TOPICS[m % len(_TOPICS)]
        text = [line.format(n=1000 + m) for line in lines]
        t = start_ns + m * 60 * _NS
        seq = len(events) + 1
        focus = pb.WindowFocus(window_id=m + 1, app_id="mousepad", wm_class="mousepad", title=f"{topic} {m}")
        events.append(pb.Event(seq=seq, time_unix_nano=t, window_focus=focus))
        snapshot = pb.TextSnapshot(window_id=m + 1, app_id="mousepad", source="atspi", text="\n".join(text))
        events.append(pb.Event(seq=seq + 1, time_unix_nano=t + _NS, text=snapshot))
        if m % frames_every == 0:
            shot = pb.ScreenFrame(
                image=_screen(text), mime_type="image/webp", width=800, height=480, window_id=m + 1
            )
            events.append(pb.Event(seq=seq + 2, time_unix_nano=t + 2 * _NS, frame=shot))
    return events


class _Stream:
    """One Ingest.Stream of one desktop session (Hello, then batches, each acknowledged)."""

    def __init__(self, address: str, user: str, session: str) -> None:
        self._channel = grpc.aio.insecure_channel(address)
        token = issue_token(TOKEN_SECRET, user, "ingest", session_id=session)
        # grpc-stubs types the sync API; the asyncio call takes no request iterator.
        stream: Any = self._channel.stream_stream(
            "/shadowdesk.v1.Ingest/Stream",
            request_serializer=pb.AgentMessage.SerializeToString,
            response_deserializer=pb.CloudMessage.FromString,
        )
        self._call = stream(metadata=(("authorization", f"Bearer {token}"),), timeout=600)
        self._hello = pb.AgentMessage(hello=pb.Hello(user_id=user, session_id=session, agent_version="bench"))

    async def open(self) -> int:
        await self._call.write(self._hello)
        welcome = await self._call.read()
        assert isinstance(welcome, pb.CloudMessage), welcome
        return welcome.welcome.acked_seq

    async def send(self, events: Sequence[pb.Event]) -> int:
        await self._call.write(pb.AgentMessage(batch=pb.EventBatch(events=events)))
        reply = await self._call.read()
        assert isinstance(reply, pb.CloudMessage), reply
        return reply.ack.acked_seq

    async def close(self) -> None:
        await self._channel.close(None)


async def _ingest(address: str, user: str, events: list[pb.Event]) -> None:
    stream = _Stream(address, user, f"{user}-desk")
    await stream.open()
    for i in range(0, len(events), 40):
        await stream.send(events[i : i + 40])
    await stream.close()


def _auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, user, 'read')}"}


async def _flood(kind: str, url: str, grpc_address: str, flooders: int, seconds: float) -> FloodResult:
    result = FloodResult()
    headers = _auth(MALLORY)
    end = time.monotonic() + seconds
    big = {"texts": ["lorem ipsum dolor sit amet " * 144] * 64}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        frames = [
            hit["thumb_url"]
            for hit in (await client.get("/v1/recall/search", params={"q": "invoice"})).json().get("hits", [])
            if hit.get("thumb_url")
        ]

        def count(status: int) -> None:
            if status < 400:
                result.ok += 1
            elif status == 429:
                result.refused += 1
            else:
                result.failed += 1

        async def http_loop(n: int) -> None:
            rng = random.Random(n)
            while time.monotonic() < end:
                try:
                    if kind == "embeddings":
                        response = await client.post("/v1/llm/embeddings", json=big)
                    elif kind == "search":
                        response = await client.get("/v1/recall/search", params={"q": rng.choice(_QUERIES)})
                    elif kind == "timeline":
                        response = await client.get("/v1/timeline")
                    elif kind == "export":
                        response = await client.get("/v1/recall/export")
                    else:
                        response = await client.get(rng.choice(frames) if frames else "/v1/timeline")
                    count(response.status_code)
                    if response.status_code == 429:
                        await asyncio.sleep(0.05)  # a flooder ignores Retry-After, but not for ever
                except httpx.HTTPError:
                    result.failed += 1

        async def ingest_loop(n: int) -> None:
            stream = _Stream(grpc_address, MALLORY, f"{MALLORY}-flood-{n}")
            seq = await stream.open()
            shot = _screen(["flood frame", "nothing to see"])
            while time.monotonic() < end:
                t = time.time_ns()
                batch = [
                    pb.Event(
                        seq=seq + i + 1,
                        time_unix_nano=t + i,
                        frame=pb.ScreenFrame(image=shot, mime_type="image/webp", width=800, height=480),
                    )
                    for i in range(20)
                ]
                try:
                    seq = await stream.send(batch)
                    result.ok += 1
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                        result.failed += 1
                        return
                    result.refused += 1
                    await stream.close()
                    stream = _Stream(grpc_address, MALLORY, f"{MALLORY}-flood-{n}")
                    seq = await stream.open()
            await stream.close()

        async def ask_loop(n: int) -> None:
            ws_url = url.replace("http://", "ws://") + "/v1/recall/live"
            token = issue_token(TOKEN_SECRET, MALLORY, "read")
            async with websockets.connect(ws_url, subprotocols=["shadowdesk.v1", f"bearer.{token}"]) as ws:  # type: ignore[list-item]
                i = 0
                while time.monotonic() < end:
                    i += 1
                    await ws.send(
                        json.dumps({"type": "ask", "id": str(i), "question": "what was the invoice total?"})
                    )
                    while True:
                        message = json.loads(await asyncio.wait_for(ws.recv(), 120))
                        if message.get("id") == str(i) and message["type"] in ("answer.done", "answer.error"):
                            break
                    if message["type"] == "answer.done":
                        result.ok += 1
                    elif "rate" in message.get("message", "") or "more than" in message.get("message", ""):
                        result.refused += 1
                        await asyncio.sleep(0.05)
                    else:
                        result.failed += 1

        loop = {"ingest": ingest_loop, "ask": ask_loop}.get(kind, http_loop)
        await asyncio.gather(*(loop(n) for n in range(flooders)), return_exceptions=False)
    return result


Counts = dict[str, tuple[int, int, int]]


def _flood_process(
    kinds: list[str], url: str, grpc_address: str, flooders: int, seconds: float, out: Queue[Counts]
) -> None:
    async def run() -> dict[str, FloodResult]:
        results = await asyncio.gather(*(_flood(k, url, grpc_address, flooders, seconds) for k in kinds))
        return dict(zip(kinds, results, strict=True))

    out.put({k: (r.ok, r.refused, r.failed) for k, r in asyncio.run(run()).items()})


def _bob_searches(url: str, count: int) -> tuple[list[float], int]:
    """Bob searches at a person's pace (one every 0.5 s, his own sustained limit), each timed."""
    latencies, errors = [], 0
    with httpx.Client(base_url=url, headers=_auth(BOB), timeout=120) as client:
        for i in range(count):
            started = time.perf_counter()
            response = client.get("/v1/recall/search", params={"q": _QUERIES[i % len(_QUERIES)]})
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200 or not response.json()["hits"]
            time.sleep(max(0.0, _BOB_PACE_S - (time.perf_counter() - started)))
    return latencies, errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moments", type=int, default=60, help="moments in each user's history")
    parser.add_argument("--searches", type=int, default=60, help="Bob's searches per row")
    parser.add_argument("--flooders", type=int, default=8, help="Mallory's concurrent loops per resource")
    parser.add_argument("--floods", nargs="*", default=[*FLOODS, "all"], help="rows to run")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="shadowdesk-neighbour-") as tmp:
        store = {"SHADOWDESK_STORE_BACKEND": "local", "SHADOWDESK_STORE_LOCAL_ROOT": f"{tmp}/store"}
        server = ServerProcess(store, Path(tmp) / "server.log")
        server.start()
        try:
            start = time.time_ns() - 3 * 3600 * _NS
            for user in (BOB, MALLORY):
                asyncio.run(_ingest(server.grpc_address, user, _history(start, args.moments, frames_every=3)))
            _wait_indexed(server.http_url)
            rows = []
            baseline, errors = _bob_searches(server.http_url, args.searches)
            base_p95 = percentile(baseline, 95)
            rows.append(
                [
                    "none (baseline)",
                    "",
                    "",
                    fmt(percentile(baseline, 50), 1),
                    fmt(base_p95, 1),
                    "1.00",
                    str(errors),
                ]
            )
            for flood in args.floods:
                kinds = list(FLOODS) if flood == "all" else [flood]
                out: Queue[Counts] = multiprocessing.get_context("spawn").Queue()
                seconds = 8.0 + args.searches * _BOB_PACE_S
                flooder = multiprocessing.get_context("spawn").Process(
                    target=_flood_process,
                    args=(kinds, server.http_url, server.grpc_address, args.flooders, seconds, out),
                )
                flooder.start()
                time.sleep(3.0)  # let the flood reach its steady state
                loaded, errors = _bob_searches(server.http_url, args.searches)
                counts = out.get(timeout=seconds + 180)
                flooder.join(30)
                ok = sum(c[0] for c in counts.values())
                refused = sum(c[1] for c in counts.values())
                failed = sum(c[2] for c in counts.values())
                p95 = percentile(loaded, 95)
                rows.append(
                    [
                        flood,
                        fmt(ok / seconds, 1),
                        fmt(refused / seconds, 1) + (f" ({failed} failed)" if failed else ""),
                        fmt(percentile(loaded, 50), 1),
                        fmt(p95, 1),
                        fmt(p95 / base_p95, 2),
                        str(errors),
                    ]
                )
            after, _ = _bob_searches(server.http_url, args.searches)
            rows.append(
                [
                    "none (baseline again, at the end)",
                    "",
                    "",
                    fmt(percentile(after, 50), 1),
                    fmt(percentile(after, 95), 1),
                    fmt(percentile(after, 95) / base_p95, 2),
                    "",
                ]
            )
        finally:
            server.terminate()
    sys.stdout.write(f"{command_line('bench.noisy_neighbour_bench', argv)}\n\n")
    header = [
        "Mallory floods",
        "her answered req/s",
        "her refused req/s",
        "Bob search p50 ms",
        "Bob search p95 ms",
        "p95 ÷ baseline p95",
        "Bob errors",
    ]
    sys.stdout.write(markdown_table(header, rows) + "\n")
    return 0


def _wait_indexed(url: str, timeout_s: float = 300.0) -> None:
    """Until both users find every topic (OCR and the index have caught up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found: Counter[str] = Counter()
        for user in (BOB, MALLORY):
            with httpx.Client(base_url=url, headers=_auth(user), timeout=60) as client:
                for query in _QUERIES:
                    reply = client.get("/v1/recall/search", params={"q": query})
                    found[user] += reply.status_code == 200 and bool(reply.json()["hits"])
        if all(found[user] == len(_QUERIES) for user in (BOB, MALLORY)):
            time.sleep(10)  # the users' search allowance refills before anything is measured
            return
        time.sleep(3)  # within the users' own search limit
    raise RuntimeError("the histories were not indexed in time")


if __name__ == "__main__":
    raise SystemExit(main())
