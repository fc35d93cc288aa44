"""The agent's send policy: routine samples go out together, anything else at once."""

from __future__ import annotations

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.send_policy import SendPolicy

GIB = 1024**3


def sample(cpu: float = 10.0, memory: float = 0.5, disk: float = 40.0, **fields: float) -> pb.Event:
    metrics = pb.SystemMetrics(
        cpu_percent=cpu,
        memory_used_bytes=int(memory * 16 * GIB),
        memory_total_bytes=16 * GIB,
        disk_used_percent=disk,
        **fields,  # type: ignore[arg-type]
    )
    return pb.Event(metrics=metrics)


def test_routine_samples_wait_for_the_interval_then_go_together() -> None:
    policy = SendPolicy(5.0)
    assert policy.send_now([sample()], 0.0)  # the first flush sends: nothing was sent yet
    assert [policy.send_now([sample()], t) for t in (1.0, 2.0, 3.0, 4.0)] == [False] * 4
    assert policy.send_now([sample()], 5.0)
    assert not policy.send_now([sample()], 6.0)


def test_other_events_and_samples_near_a_limit_go_at_once() -> None:
    policy = SendPolicy(5.0)
    policy.send_now([sample()], 0.0)
    focus = pb.Event(window_focus=pb.WindowFocus(window_id=1, app_id="xterm"))
    assert policy.send_now([sample(), focus], 1.0)
    assert policy.send_now([sample(cpu=85.0)], 1.5)
    assert policy.send_now([sample(memory=0.9)], 2.0)
    assert policy.send_now([sample(disk=93.0)], 2.5)
    assert policy.send_now([sample(desktop_probe_ms=400.0)], 3.0)
    assert not policy.send_now([sample()], 3.5)


def test_a_moving_oom_or_swap_counter_is_news() -> None:
    policy = SendPolicy(5.0)
    policy.send_now([sample(oom_kills=3, swap_out_pages=100)], 0.0)
    assert not policy.send_now([sample(oom_kills=3, swap_out_pages=100)], 1.0)
    assert policy.send_now([sample(oom_kills=4, swap_out_pages=100)], 2.0)
    assert policy.send_now([sample(oom_kills=4, swap_out_pages=180)], 2.5)
    assert not policy.send_now([sample(oom_kills=4, swap_out_pages=180)], 3.0)


def test_zero_sends_every_flush() -> None:
    policy = SendPolicy(0.0)
    assert all(policy.send_now([sample()], t / 2) for t in range(6))
