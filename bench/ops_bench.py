"""Ops diagnostics against one real server (default settings, embedded local store), simulated desktops.

Four measurements (``bench.ops_sessions`` describes the traces and faults):

* ``detection``: S sessions stream one sample a second in real time; each gets faults at random times
  (60 s each, at least 60 s apart, after a 60 s warm-up). A poller reads ``/v1/ops/incidents`` every
  0.5 s, as the console does. A detection is a poll that shows a session's part of an incident active
  after it was absent or over (the same session's fault coming back re-activates its part). Latency is
  from a fault's first sample to its first detection of an expected rule; recall: faults detected;
  precision: detections that match a fault of that session, its kind and its time.
* ``soak``: fault-free traces in accelerated time (a minute of samples per batch, the desktop's own
  timestamps, so every rule sees 1 Hz data): incidents per 100 session-hours. The per-user ingest
  limit is raised for the accelerated replay (named in the output).
* ``grouping``: N sessions get the same fault within 10 s of each other: how many incidents, and how
  long until one incident holds all of them.
* ``capacity``: N sessions sampling at 1 Hz, sent as the agent sends routine samples (a batch of 5
  every 5 s, ``bench.ingest_load``, metrics only) while the ops API is queried in a loop: ack latency,
  query latency, and how far the diagnostics consumer lags.

Sessions in ``detection`` and ``grouping`` send as the agent does (``session_agent.send_policy``):
routine samples wait up to 5 s, samples near a limit go at once.

Run: ``.venv/bin/python -m bench.ops_bench detection --sessions 40 --minutes 10``
(also ``soak --session-hours 200``, ``grouping --sessions 100``, ``capacity --sessions 500 1000 2000``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc.aio
import httpx

from bench.ingest_bench import PhaseResult, Setup, make_agents, run_phase
from bench.ops_sessions import EXPECTED, Fault, SimSession, Trace, metrics_event
from bench.report import command_line, fmt, markdown_table, percentile
from cloud_infer.auth import issue_token
from cloud_infer.diagnostics.service import pseudonym, pseudonym_key
from harness.processes import TOKEN_SECRET, ServerProcess
from session_agent.config import AgentSettings
from session_agent.send_policy import SendPolicy

logger = logging.getLogger(__name__)
_POLL_S = 0.5
_FAULT_S = 60.0
_SLACK_S = 5.0
_CHANNELS = 8


def _server(work: Path, name: str, **settings: str) -> ServerProcess:
    env = {"SHADOWDESK_STORE_LOCAL_ROOT": str(work / f"{name}-store")}
    return ServerProcess(env, work / f"{name}.log", None, **settings)


def _admin_headers() -> dict[str, str]:
    token = issue_token(TOKEN_SECRET, "bench-admin", ["read", "admin"], ttl_s=3600)
    return {"authorization": f"Bearer {token}"}


def _sessions(run_id: str, n: int, channels: list[grpc.aio.Channel]) -> list[SimSession]:
    found = []
    for i in range(n):
        user, session = f"ops-{run_id}-u{i:05d}", f"ops-{run_id}-s{i:05d}"
        token = issue_token(TOKEN_SECRET, user, "ingest", session_id=session, ttl_s=7200)
        found.append(SimSession(channels[i % len(channels)], user, session, token))
    return found


@dataclass(frozen=True, slots=True)
class Activation:
    """A session's part of an incident seen active by a poll, having been absent or over before: a
    detection (a part over and active again is the same session's fault coming back)."""

    incident_id: str
    subject: str
    rule: str
    seen: float  # wall-clock time of the poll


class IncidentPoller:
    """Polls the incident list; remembers when each (incident, session) part was first seen and each
    time it became active."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self.first_seen: dict[tuple[str, str], float] = {}
        self.activations: list[Activation] = []
        self._active: dict[tuple[str, str], bool] = {}
        self.incidents: dict[str, dict[str, object]] = {}
        self.query_ms: list[float] = []

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=self._base_url, headers=_admin_headers(), timeout=10) as http:
            while not stop.is_set():
                await self.poll(http)
                try:
                    async with asyncio.timeout(_POLL_S):
                        await stop.wait()
                except TimeoutError:
                    pass
            await self.poll(http)

    async def poll(self, http: httpx.AsyncClient) -> None:
        started = time.monotonic()
        reply = await http.get("/v1/ops/incidents", params={"state": "all", "limit": 500})
        reply.raise_for_status()
        self.query_ms.append((time.monotonic() - started) * 1000)
        now = time.time()
        for incident in reply.json()["incidents"]:
            self.incidents[incident["incident_id"]] = incident
            for part in incident["sessions"]:
                key = (incident["incident_id"], part["subject"])
                self.first_seen.setdefault(key, now)
                if part["active"] and not self._active.get(key, False):
                    self.activations.append(Activation(*key, incident["rule"], now))
                self._active[key] = part["active"]


def _subjects(server: ServerProcess, sessions: Sequence[SimSession]) -> dict[str, SimSession]:
    """Pseudonym -> session: computed the way the server does, from the same token secret."""
    key = pseudonym_key(TOKEN_SECRET)
    return {pseudonym(key, s.user, s.session): s for s in sessions}


def _schedule(rng: random.Random, start: float, seconds: float, warmup_s: float) -> list[Fault]:
    faults, t = [], start + warmup_s + rng.uniform(0, 60)
    while t + _FAULT_S < start + seconds:
        faults.append(Fault(rng.choice(sorted(EXPECTED)), t, _FAULT_S))
        t += _FAULT_S + 60 + rng.uniform(0, 120)
    return faults


async def _stream_real_time(
    sessions: list[SimSession], traces: list[Trace], start: float, end: float
) -> None:
    async def one(session: SimSession, trace: Trace) -> None:
        # The agent's own send policy: routine samples wait, samples near a limit go at once.
        policy = SendPolicy(AgentSettings.model_fields["routine_send_interval_s"].default)
        pending: list[tuple[float, float, float, float]] = []
        t = start + random.uniform(0, 1)
        while t < end:
            await asyncio.sleep(max(0.0, t - time.time()))
            pending.append((t, *trace.sample(t)))
            if policy.send_now([metrics_event(0, *pending[-1])], time.monotonic()):
                await session.send(pending)
                pending = []
            t += 1.0

    await asyncio.gather(*(one(s, tr) for s, tr in zip(sessions, traces, strict=True)))


@dataclass(frozen=True, slots=True)
class DetectionResult:
    faults: int
    detected: int
    parts: int
    true_parts: int
    latencies_s: list[float]
    by_kind: dict[str, tuple[int, int]]
    latencies_by_kind: dict[str, list[float]]


async def _detection(
    server: ServerProcess, n: int, minutes: float, seed: int, warmup_s: float
) -> DetectionResult:
    rng = random.Random(seed)
    channels = [grpc.aio.insecure_channel(server.grpc_address) for _ in range(_CHANNELS)]
    sessions = _sessions(secrets.token_hex(3), n, channels)
    for s in sessions:
        await s.connect(minutes * 60 + 600)
    start = time.time() + 2
    end = start + minutes * 60
    traces = [
        Trace(random.Random(rng.random()), _schedule(rng, start, minutes * 60, warmup_s)) for _ in sessions
    ]
    poller = IncidentPoller(server.http_url)
    stop = asyncio.Event()
    polling = asyncio.create_task(poller.run(stop))
    await _stream_real_time(sessions, traces, start, end)
    await asyncio.sleep(3)
    stop.set()
    await polling
    for s in sessions:
        await s.close()
    for c in channels:
        await c.close(None)
    by_subject = _subjects(server, sessions)
    trace_of = {s.session: tr for s, tr in zip(sessions, traces, strict=True)}
    detected: dict[tuple[str, float], float] = {}
    kind_at: dict[tuple[str, float], str] = {}
    true_parts = 0
    for activation in poller.activations:
        session = by_subject.get(activation.subject)
        if session is None:
            continue
        match = next(
            (
                f
                for f in trace_of[session.session].faults
                if activation.rule in EXPECTED[f.kind]
                and f.onset <= activation.seen <= f.onset + f.duration_s + _SLACK_S
            ),
            None,
        )
        if match is None:
            logger.info(
                "unmatched: %s %s at %.0f s", activation.rule, activation.subject, activation.seen - start
            )
            continue
        true_parts += 1
        key = (session.session, match.onset)
        kind_at[key] = match.kind
        seen = activation.seen - match.onset
        detected[key] = min(detected.get(key, seen), seen)
    faults = [(s.session, f) for s, tr in zip(sessions, traces, strict=True) for f in tr.faults]
    by_kind = {
        kind: (
            sum(1 for sid, f in faults if f.kind == kind and (sid, f.onset) in detected),
            sum(1 for _, f in faults if f.kind == kind),
        )
        for kind in sorted(EXPECTED)
    }
    latencies_by_kind: dict[str, list[float]] = {}
    for key, latency in detected.items():
        latencies_by_kind.setdefault(kind_at[key], []).append(latency)
    return DetectionResult(
        len(faults),
        len(detected),
        len(poller.activations),
        true_parts,
        sorted(detected.values()),
        by_kind,
        latencies_by_kind,
    )


async def _soak(
    server: ServerProcess, n: int, session_hours: float, seed: int
) -> tuple[int, float, list[str]]:
    rng = random.Random(seed)
    channels = [grpc.aio.insecure_channel(server.grpc_address) for _ in range(_CHANNELS)]
    sessions = _sessions(secrets.token_hex(3), n, channels)
    for s in sessions:
        await s.connect(3600)
    seconds = int(session_hours * 3600 / n)
    start = time.time() - seconds - 60  # the replay ends in the past: nothing is "in the future"

    async def one(session: SimSession, trace: Trace) -> None:
        for minute in range(0, seconds, 60):
            ts = [start + minute + i for i in range(min(60, seconds - minute))]
            await session.send([(t, *trace.sample(t)) for t in ts])

    started = time.monotonic()
    await asyncio.gather(*(one(s, Trace(random.Random(rng.random()))) for s in sessions))
    elapsed = time.monotonic() - started
    await asyncio.sleep(5)  # the consumer judges what was acked
    async with httpx.AsyncClient(base_url=server.http_url, headers=_admin_headers(), timeout=10) as http:
        reply = await http.get("/v1/ops/incidents", params={"state": "all", "limit": 500})
        reply.raise_for_status()
    for s in sessions:
        await s.close()
    for c in channels:
        await c.close(None)
    subjects = set(_subjects(server, sessions))
    parts = [
        f"{i['rule']} {p['subject']} peak {p['peak']:.0f}"
        for i in reply.json()["incidents"]
        for p in i["sessions"]
        if p["subject"] in subjects
    ]
    return len(parts), elapsed, parts


async def _grouping(
    server: ServerProcess, n: int, seed: int, warmup_s: float
) -> tuple[int, float | None, int]:
    rng = random.Random(seed)
    channels = [grpc.aio.insecure_channel(server.grpc_address) for _ in range(_CHANNELS)]
    sessions = _sessions(secrets.token_hex(3), n, channels)
    for s in sessions:
        await s.connect(900)
    start = time.time() + 2
    onset = start + warmup_s
    traces = [
        Trace(random.Random(rng.random()), [Fault("disk_fill", onset + rng.uniform(0, 10), 90)])
        for _ in sessions
    ]
    poller = IncidentPoller(server.http_url)
    stop = asyncio.Event()
    polling = asyncio.create_task(poller.run(stop))
    await _stream_real_time(sessions, traces, start, onset + 40)  # a disk fault holds at once
    stop.set()
    await polling
    for s in sessions:
        await s.close()
    for c in channels:
        await c.close(None)
    subjects = set(_subjects(server, sessions))
    disk = {i: inc for i, inc in poller.incidents.items() if inc["rule"] == "disk_full"}
    everyone_at = None
    for incident_id in disk:
        seen = [
            poller.first_seen[(incident_id, s)] for s in subjects if (incident_id, s) in poller.first_seen
        ]
        if len(seen) == n:
            everyone_at = max(seen) - onset
    largest = max((len(inc["sessions"]) for inc in disk.values()), default=0)  # type: ignore[arg-type]
    return len(disk), everyone_at, largest


def _query_loop(base_url: str, stop: threading.Event, timings: dict[str, list[float]]) -> None:
    with httpx.Client(base_url=base_url, headers=_admin_headers(), timeout=30) as http:
        while not stop.is_set():
            for path in ("/v1/ops/incidents", "/v1/ops/sessions"):
                started = time.monotonic()
                reply = http.get(path)
                reply.raise_for_status()
                timings.setdefault(path, []).append((time.monotonic() - started) * 1000)
            stop.wait(0.5)


def _diagnostics_lag(server: ServerProcess) -> str:
    with urllib.request.urlopen(f"{server.http_url}/health/stream", timeout=10) as reply:
        consumers = json.load(reply)["consumers"]
    return "; ".join(
        f"{c['consumer']} {c['seconds_behind']:.1f} s" for c in consumers if c["consumer"] == "diagnostics"
    )


def _capacity(work: Path, counts: Sequence[int], seconds: float, send_interval_s: float) -> str:
    rows = []
    for n in counts:
        setup = Setup(
            seconds=seconds,
            batch_events=round(send_interval_s),
            window=2,
            client_procs=2,
            agents_per_channel=100,
            ack_timeout_s=60.0,
            minio_pid=None,
            metrics_only=True,
        )
        with _server(work, f"capacity-{n}") as server:
            stop, timings = threading.Event(), dict[str, list[float]]()
            querying = threading.Thread(
                target=_query_loop, args=(server.http_url, stop, timings), daemon=True
            )
            querying.start()
            agents = make_agents(secrets.token_hex(3), n)
            phase: PhaseResult = run_phase(setup, server, agents, "1 Hz", send_interval_s)
            lag = _diagnostics_lag(server)
            stop.set()
            querying.join(60)
        rows.append(
            [
                str(n),
                f"{phase.connected}",
                fmt(phase.acked_events_s),
                fmt(phase.p50_ms, 1),
                fmt(phase.p99_ms, 1),
                fmt(phase.server.cpu_percent),
                fmt(phase.server.rss_max_mb),
                " / ".join(fmt(percentile(v, 95), 1) for v in timings.values()) or "-",
                lag,
                "; ".join(phase.errors) or "none",
            ]
        )
        logger.info("capacity N=%d: %s", n, rows[-1])
    header = [
        "sessions",
        "connected",
        "acked ev/s",
        "ack p50 ms",
        "ack p99 ms",
        "server CPU %",
        "server RSS MiB",
    ]
    header += ["query p95 ms (incidents / sessions)", "diagnostics lag", "errors"]
    return markdown_table(header, rows)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    detection = sub.add_parser("detection")
    detection.add_argument("--sessions", type=int, default=40)
    detection.add_argument("--minutes", type=float, default=10)
    soak = sub.add_parser("soak")
    soak.add_argument("--sessions", type=int, default=50)
    soak.add_argument("--session-hours", type=float, default=200)
    grouping = sub.add_parser("grouping")
    grouping.add_argument("--sessions", type=int, default=100)
    capacity = sub.add_parser("capacity")
    capacity.add_argument("--sessions", type=int, nargs="+", default=[500, 1000, 2000])
    capacity.add_argument("--seconds", type=float, default=60)
    capacity.add_argument(
        "--send-interval",
        type=float,
        default=AgentSettings.model_fields["routine_send_interval_s"].default,
        help="seconds of 1 Hz samples per batch (default: the agent's routine_send_interval_s)",
    )
    for p in (detection, soak, grouping):
        p.add_argument("--seed", type=int, default=7)
    for p in (detection, grouping):
        p.add_argument("--warmup", type=float, default=60, help="seconds of fault-free samples first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    _out(f"command: {command_line('bench.ops_bench', argv)}")
    with tempfile.TemporaryDirectory(prefix="ops-bench-") as tmp:
        work = Path(tmp)
        if args.mode == "capacity":
            _out(_capacity(work, args.sessions, args.seconds, args.send_interval))
            return 0
        if args.mode == "soak":
            # A minute of samples per batch and many batches a second: far above a desktop's rate.
            with _server(work, "soak", limit_ingest_events_per_s="1000000") as server:
                count, elapsed, parts = asyncio.run(
                    _soak(server, args.sessions, args.session_hours, args.seed)
                )
            _out(
                f"soak: {args.session_hours:g} session-hours over {args.sessions} sessions, replayed in "
                f"{elapsed:.0f} s (SHADOWDESK_LIMIT_INGEST_EVENTS_PER_S=1000000 for the replay): "
                f"{count} incident parts = {100 * count / args.session_hours:.2f} per 100 session-hours"
            )
            for part in parts[:20]:
                _out(f"  {part}")
            return 0
        if args.mode == "grouping":
            with _server(work, "grouping") as server:
                incidents, everyone_s, largest = asyncio.run(
                    _grouping(server, args.sessions, args.seed, args.warmup)
                )
            _out(
                f"grouping: {args.sessions} sessions, one disk fault within 10 s: {incidents} disk_full "
                f"incident(s), the largest holds {largest} sessions; all {args.sessions} in one incident "
                f"{'never' if everyone_s is None else f'{everyone_s:.1f} s after the first onset'}"
            )
            return 0
        with _server(work, "detection") as server:
            result = asyncio.run(_detection(server, args.sessions, args.minutes, args.seed, args.warmup))
    lat = result.latencies_s
    _out(
        f"detection: {args.sessions} sessions x {args.minutes:g} min, {result.faults} faults; "
        f"recall {result.detected / max(1, result.faults):.3f} ({result.detected}/{result.faults}), "
        f"precision {result.true_parts / max(1, result.parts):.3f} "
        f"({result.true_parts}/{result.parts} detections)"
    )
    if lat:
        _out(
            f"latency s: p50 {percentile(lat, 50):.1f}, p95 {percentile(lat, 95):.1f}, "
            f"max {max(lat):.1f}, mean {statistics.mean(lat):.1f}"
        )
    for kind, (found, total) in result.by_kind.items():
        kind_lat = result.latencies_by_kind.get(kind, [])
        spread = (
            f", latency p50 {percentile(kind_lat, 50):.1f} s, max {max(kind_lat):.1f} s" if kind_lat else ""
        )
        _out(f"  {kind}: {found}/{total} detected{spread}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
