"""Ingest throughput and ack latency of ONE server core, against a real MinIO.

For each agent count N: start a fresh MinIO and ``shadowdesk server`` pinned to one core (taskset),
spread N simulated agents (bench.ingest_load) over a few client processes, and run two phases on the
same server:

* ``max``: closed loop; every agent keeps ``--window`` batches in flight. Gives the saturation
  throughput (events/s acknowledged) and the ack latency at saturation.
* ``paced``: every agent sends one batch per fixed interval so that all together offer
  each ``--load-fraction`` of the ``max`` throughput. Gives the ack latency of a server with headroom.

Acks do not wait for the consumers of the committed stream (Recall, with default settings): at the
end of each phase the bench asks the server's ``/health/stream`` how far behind each consumer is.

MinIO, the client processes and this driver run on the other cores (on a 2-core machine: all of them
share the second core), so the server core is measured alone; their CPU is reported beside it.

One simulated agent is one user sending thousands of events a second, far above the per-user ingest
rate a real desktop needs (``SHADOWDESK_LIMIT_INGEST_EVENTS_PER_S``, default 200 events/s): to measure
the server rather than that limit, the bench raises it to ``--user-events-per-s`` and says so.

Run: ``.venv/bin/python -m bench.ingest_bench --agents 10 100 1000 --seconds 20``
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import queue
import secrets
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path

import psutil

from bench.ingest_load import AgentSpec, GoQueue, LoadResult, LoadSpec, ReadyQueue, run_load_process
from bench.process_stats import Usage, UsageMeter
from bench.report import command_line, fmt, markdown_table, percentile
from cloud_infer.auth import issue_token
from cloud_infer.tenancy.config import TenantLimitSettings
from harness.minio import MinioServer
from harness.processes import TOKEN_SECRET, ServerProcess, minio_store_env

logger = logging.getLogger(__name__)

_READY_DEADLINE_S = 300.0
# After the run, agents get --ack-timeout to drain their window, then this long to close and report.
_REPORT_MARGIN_S = 60.0
_START_DELAY_S = 0.5


_DEFAULT_USER_RATE = TenantLimitSettings.model_fields["ingest_events_per_s"].default


@dataclass(frozen=True, slots=True)
class PhaseResult:
    agents: int
    mode: str
    connected: int
    batch_events: int
    offered_events_s: float
    acked_events_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server: Usage
    minio_cpu_percent: float
    clients_cpu_percent: float
    stalls: int
    stream_lag: str
    errors: list[str]


@dataclass(frozen=True, slots=True)
class Setup:
    seconds: float
    batch_events: int
    window: int
    client_procs: int
    agents_per_channel: int
    ack_timeout_s: float
    minio_pid: int | None  # None: the server's store is the embedded local one
    metrics_only: bool = False


def _pin_self_off(server_cpu: int) -> None:
    """Keep this driver and everything it starts (MinIO, clients) off the server's core."""
    others = os.sched_getaffinity(0) - {server_cpu}
    if not others:
        raise SystemExit(f"cannot keep cpu {server_cpu} for the server: no other cpu is available")
    os.sched_setaffinity(0, others)


def _minio_pid(binary: str) -> int:
    name = Path(binary).name
    for child in psutil.Process().children():
        if child.name() == name:
            return child.pid
    raise RuntimeError(f"no child process named {name!r}")


def make_agents(run_id: str, n: int) -> list[AgentSpec]:
    specs = []
    for i in range(n):
        user, session = f"bench-{run_id}-u{i:05d}", f"bench-{run_id}-s{i:05d}"
        token = issue_token(TOKEN_SECRET, user_id=user, scope="ingest", session_id=session, ttl_s=3600)
        specs.append(AgentSpec(user_id=user, session_id=session, token=token))
    return specs


def _stream_lag(server: ServerProcess) -> str:
    """Each committed-stream consumer's lag right now, from the server's health endpoint."""
    try:
        with urllib.request.urlopen(f"{server.http_url}/health/stream", timeout=10) as reply:
            consumers = json.load(reply)["consumers"]
    except (OSError, ValueError, KeyError) as exc:
        return f"unavailable ({type(exc).__name__})"
    lags = [f"{c['consumer']} {c['events_behind']:,} ev, {c['seconds_behind']:.1f} s" for c in consumers]
    return "; ".join(lags) or "no consumers"


def run_phase(
    setup: Setup, server: ServerProcess, agents: list[AgentSpec], mode: str, interval_s: float | None
) -> PhaseResult:
    ctx = mp.get_context("spawn")  # grpc does not survive fork
    ready: ReadyQueue = ctx.Queue()
    go: GoQueue = ctx.Queue()
    results: Queue[LoadResult] = ctx.Queue()
    n_procs = min(setup.client_procs, len(agents))
    connect_timeout_s = 120.0
    result_deadline_s = setup.ack_timeout_s + _REPORT_MARGIN_S
    deadline_s = _READY_DEADLINE_S + setup.seconds + result_deadline_s
    procs = []
    for i in range(n_procs):
        spec = LoadSpec(
            target=server.grpc_address,
            agents=agents[i::n_procs],
            batch_events=setup.batch_events,
            window=setup.window,
            interval_s=interval_s,
            agents_per_channel=setup.agents_per_channel,
            connect_timeout_s=connect_timeout_s,
            ack_timeout_s=setup.ack_timeout_s,
            stream_deadline_s=deadline_s,
            metrics_only=setup.metrics_only,
        )
        procs.append(ctx.Process(target=run_load_process, args=(spec, ready, go, results), daemon=True))
    for proc in procs:
        proc.start()
    try:
        connected = 0
        connect_errors: list[str] = []
        for _ in procs:
            try:
                count, errs = ready.get(timeout=_READY_DEADLINE_S)
            except queue.Empty:
                raise RuntimeError(
                    f"a client process did not connect within {_READY_DEADLINE_S:.0f} s"
                ) from None
            connected += count
            connect_errors += errs
        logger.info("%s phase: %d/%d agents connected", mode, connected, len(agents))
        start = time.monotonic() + _START_DELAY_S
        end = start + setup.seconds
        for _ in procs:
            go.put((start, end))
        meters = [
            UsageMeter([server.pid]),
            UsageMeter([] if setup.minio_pid is None else [setup.minio_pid]),
            UsageMeter([p.pid for p in procs if p.pid is not None]),
        ]
        time.sleep(max(0.0, start - time.monotonic()))
        for meter in meters:
            meter.start()
        time.sleep(max(0.0, end - time.monotonic()))
        server_usage, minio_usage, clients_usage = (meter.stop() for meter in meters)
        merged = LoadResult()
        for _ in procs:
            try:
                part = results.get(timeout=result_deadline_s)
            except queue.Empty:
                raise RuntimeError(
                    f"a client process sent no result within {result_deadline_s:.0f} s of the end of the run"
                ) from None
            merged.events_acked += part.events_acked
            merged.batches_acked += part.batches_acked
            merged.latencies_ms += part.latencies_ms
            merged.stalls += part.stalls
            merged.errors += part.errors
        stream_lag = _stream_lag(server)
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    offered = (len(agents) * setup.batch_events / interval_s) if interval_s else float("nan")
    return PhaseResult(
        agents=len(agents),
        mode=mode,
        connected=connected,
        batch_events=setup.batch_events,
        offered_events_s=offered,
        acked_events_s=merged.events_acked / setup.seconds,
        p50_ms=percentile(merged.latencies_ms, 50),
        p99_ms=percentile(merged.latencies_ms, 99),
        max_ms=max(merged.latencies_ms, default=float("nan")),
        server=server_usage,
        minio_cpu_percent=minio_usage.cpu_percent,
        clients_cpu_percent=clients_usage.cpu_percent,
        stalls=merged.stalls,
        stream_lag=stream_lag,
        errors=connect_errors + merged.errors,
    )


def _run_agent_count(
    setup: Setup,
    n: int,
    server_env: dict[str, str],
    work: Path,
    server_cpu: int | None,
    load_fractions: Sequence[float],
) -> list[PhaseResult]:
    run_id = secrets.token_hex(3)
    agents = make_agents(run_id, n)
    with ServerProcess(server_env, work / f"server-{n}.log", cpu=server_cpu) as server:
        saturated = run_phase(setup, server, agents, "max", None)
        phases = [saturated]
        for fraction in load_fractions if saturated.acked_events_s > 0 else ():
            interval_s = n * setup.batch_events / (fraction * saturated.acked_events_s)
            phases.append(run_phase(setup, server, agents, f"paced {fraction:.0%}", interval_s))
    for phase in phases:
        logger.info(
            "N=%d %s: %.0f events/s, p50 %.1f ms, p99 %.1f ms, server cpu %.0f%%, errors %s",
            n,
            phase.mode,
            phase.acked_events_s,
            phase.p50_ms,
            phase.p99_ms,
            phase.server.cpu_percent,
            phase.errors,
        )
    return phases


def render(results: Sequence[PhaseResult]) -> str:
    header = [
        "agents",
        "phase",
        "batch (events)",
        "offered ev/s",
        "acked ev/s",
        "ev per server CPU-s",
        "ack p50 ms",
        "ack p99 ms",
        "ack max ms",
        "server CPU %",
        "server peak RSS MiB",
        "MinIO CPU %",
        "clients CPU %",
        "consumer lag at end",
        "errors",
    ]
    rows = []
    for r in results:
        cpu_s = r.server.cpu_percent / 100
        rows.append(
            [
                f"{r.agents} ({r.connected} up)" if r.connected != r.agents else str(r.agents),
                r.mode,
                str(r.batch_events),
                fmt(r.offered_events_s),
                fmt(r.acked_events_s),
                fmt(r.acked_events_s / cpu_s) if cpu_s > 0 else "n/a",
                fmt(r.p50_ms, 1),
                fmt(r.p99_ms, 1),
                fmt(r.max_ms, 1),
                fmt(r.server.cpu_percent),
                fmt(r.server.peak_rss_mb),
                fmt(r.minio_cpu_percent),
                fmt(r.clients_cpu_percent),
                r.stream_lag,
                "; ".join(r.errors) if r.errors else "0",
            ]
        )
    return markdown_table(header, rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--agents", type=int, nargs="+", default=[10, 100, 1000], help="agent counts to run")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds of each phase")
    parser.add_argument("--batch-events", type=int, default=200, help="events per EventBatch")
    parser.add_argument("--window", type=int, default=2, help="unacknowledged batches per agent")
    parser.add_argument(
        "--load-fractions",
        type=float,
        nargs="*",
        default=[0.5, 0.25],
        help="offered load of each paced phase, as a fraction of the max phase; none skips them",
    )
    parser.add_argument(
        "--client-procs", type=int, default=2, help="client processes the agents are spread over"
    )
    parser.add_argument(
        "--agents-per-channel", type=int, default=100, help="streams sharing one TCP connection"
    )
    parser.add_argument("--ack-timeout", type=float, default=60.0, help="seconds an agent waits for an ack")
    parser.add_argument(
        "--user-events-per-s",
        type=float,
        default=1_000_000.0,
        help="per-user ingest rate limit of the server under test (raised far above its default)",
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="core the server is pinned to")
    parser.add_argument("--no-pin", action="store_true", help="let every process use every core")
    parser.add_argument(
        "--store-workers",
        type=int,
        default=None,
        help="SHADOWDESK_STORE_WORKERS of the server (default: the server's own default)",
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="MinIO data and server logs (default: temp)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server_cpu: int | None = None if args.no_pin else args.server_cpu
    if server_cpu is not None:
        _pin_self_off(server_cpu)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="shadowdesk-bench-") as tmp:
        work: Path = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results: list[PhaseResult] = []
        for n in args.agents:
            # A fresh MinIO per agent count: a server starting over the last one's data would first
            # catch its consumers up on that history (as it should), inside this measurement.
            with MinioServer(work / f"minio-{n}") as minio:
                server_env = {
                    **minio_store_env(minio.endpoint, minio.access_key, minio.secret_key),
                    "SHADOWDESK_OTEL_EXPORTER": "none",
                    "SHADOWDESK_OTEL_LOG_LEVEL": "WARNING",
                    "SHADOWDESK_LIMIT_INGEST_EVENTS_PER_S": str(args.user_events_per_s),
                    "SHADOWDESK_LIMIT_INGEST_BURST_EVENTS": str(int(args.user_events_per_s)),
                    "SHADOWDESK_LIMIT_INGEST_BYTES_PER_S": str(args.user_events_per_s * 1024),
                    "SHADOWDESK_LIMIT_INGEST_BURST_BYTES": str(int(args.user_events_per_s * 1024)),
                }
                if args.store_workers is not None:
                    server_env["SHADOWDESK_STORE_WORKERS"] = str(args.store_workers)
                setup = Setup(
                    seconds=args.seconds,
                    batch_events=args.batch_events,
                    window=args.window,
                    client_procs=args.client_procs,
                    agents_per_channel=args.agents_per_channel,
                    ack_timeout_s=args.ack_timeout,
                    minio_pid=_minio_pid(minio.binary),
                )
                results += _run_agent_count(setup, n, server_env, work, server_cpu, args.load_fractions)
    load_after = os.getloadavg()[0]
    cpus = os.cpu_count()
    pinning = (
        f"server pinned to cpu {server_cpu}; MinIO, clients and driver on the other {(cpus or 1) - 1} cpu(s)"
        if server_cpu is not None
        else "no pinning"
    )
    sys.stdout.write(
        f"\n{command_line('bench.ingest_bench', argv)}\n\n"
        f"machine: {cpus} cpus; {pinning}; window {args.window} batches/agent; "
        f"per-user ingest limit raised to {args.user_events_per_s:,.0f} events/s "
        f"(default {_DEFAULT_USER_RATE:,.0f}); "
        f"{args.client_procs} client processes; small events (focus, metrics, input), no frames; "
        f"1-min load average {load_before:.2f} before, {load_after:.2f} after\n\n"
        f"{render(results)}\n"
    )
    return 0 if all(not r.errors for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
