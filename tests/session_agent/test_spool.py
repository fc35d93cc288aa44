from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.errors import SpoolSessionMismatchError
from session_agent.spool import FRAME_BOUND_FRACTION, Spool

REPO_ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def focus(title: str) -> pb.Event:
    return pb.Event(
        time_unix_nano=time.time_ns(), window_focus=pb.WindowFocus(window_id=7, app_id="xterm", title=title)
    )


def frame(size: int) -> pb.Event:
    return pb.Event(
        time_unix_nano=time.time_ns(),
        frame=pb.ScreenFrame(image=b"x" * size, mime_type="image/webp", width=8, height=8, dhash=1),
    )


def titles(events: list[pb.Event]) -> list[str]:
    return [event.window_focus.title for event in events]


def test_seqs_increase_in_append_order_and_reads_respect_limits(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", "s-1", MIB)
    assert spool.append([focus("a"), focus("b")]) == [1, 2]
    assert spool.append([focus("c")]) == [3]
    assert spool.depth == 3
    events = spool.read_after(0, 10, MIB)
    assert [e.seq for e in events] == [1, 2, 3]
    assert titles(events) == ["a", "b", "c"]
    assert [e.seq for e in spool.read_after(1, 1, MIB)] == [2]
    assert spool.read_after(3, 10, MIB) == []
    # The byte limit cuts a batch, but a single event larger than it still comes back alone.
    spool.append([frame(5000), frame(5000)])
    assert [e.seq for e in spool.read_after(3, 10, 6000)] == [4]
    assert [e.seq for e in spool.read_after(3, 10, 100)] == [4]
    spool.close()


def test_acked_rows_are_deleted_and_seq_never_goes_back_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    spool = Spool(path, "s-1", MIB)
    spool.append([focus(str(i)) for i in range(5)])
    before = spool.bytes
    spool.mark_acked(3)
    assert spool.depth == 2
    assert 0 < spool.bytes < before
    assert [e.seq for e in spool.read_after(0, 10, MIB)] == [4, 5]
    spool.close()

    spool = Spool(path, "s-1", MIB)
    assert (spool.last_seq, spool.acked_seq, spool.depth) == (5, 3, 2)
    assert titles(spool.read_after(0, 10, MIB)) == ["3", "4"]
    spool.mark_acked(5)
    assert (spool.depth, spool.bytes) == (0, 0)
    spool.close()

    spool = Spool(path, "s-1", MIB)
    assert spool.append([focus("after")]) == [6]
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM events").fetchone() == (1,)
    spool.close()


def test_soft_bound_skips_frames_and_hard_bound_drops_other_events_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    max_bytes = 20_000
    spool = Spool(tmp_path / "spool.db", "s-1", max_bytes)
    frame_size = len(frame(2000).SerializeToString())
    kept = spool.append([frame(2000) for _ in range(10)])
    assert len(kept) == int(max_bytes * FRAME_BOUND_FRACTION) // frame_size
    assert spool.dropped_frames == 10 - len(kept)
    assert spool.dropped_events == 0
    # Between the soft and the hard bound every non-frame event is still kept ...
    event_size = len(focus("t" * 100).SerializeToString())
    room = (max_bytes - spool.bytes) // event_size
    with caplog.at_level(logging.WARNING, logger="session_agent.spool"):
        assert len(spool.append([focus("t" * 100) for _ in range(room)])) == room
        assert not caplog.records
        # ... and beyond the hard bound one is dropped, counted and logged.
        assert spool.append([focus("t" * 100)]) == []
    assert spool.dropped_events == 1
    assert "spool full" in caplog.text
    # Acknowledged rows free the room again.
    spool.mark_acked(spool.last_seq)
    assert spool.append([frame(2000)]) == [spool.last_seq]
    spool.close()


def test_a_spool_belongs_to_one_session(tmp_path: Path) -> None:
    Spool(tmp_path / "spool.db", "s-1", MIB).close()
    with pytest.raises(SpoolSessionMismatchError, match="belongs to session 's-1'"):
        Spool(tmp_path / "spool.db", "s-2", MIB)


def test_reconcile_drops_what_the_cloud_has_and_renumbers_after_a_lost_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db", "s-1", MIB)
    spool.append([focus(str(i)) for i in range(6)])
    spool.reconcile(2)
    assert [e.seq for e in spool.read_after(0, 10, MIB)] == [3, 4, 5, 6]
    # The cloud already holds seq 100 of this session: pending events must follow it, in order.
    spool.reconcile(100)
    events = spool.read_after(0, 10, MIB)
    assert [e.seq for e in events] == [101, 102, 103, 104]
    assert titles(events) == ["2", "3", "4", "5"]
    assert spool.append([focus("next")]) == [105]
    spool.close()


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from protos.shadowdesk.v1 import ingest_pb2 as pb
    from session_agent.spool import Spool

    spool = Spool(Path(sys.argv[1]), "s-1", 1 << 30)
    n = 0
    while True:
        events = []
        for _ in range(50):
            n += 1
            events.append(pb.Event(time_unix_nano=time.time_ns(), window_focus=pb.WindowFocus(title=f"t{n}")))
        seqs = spool.append(events)
        print(seqs[-1], flush=True)
    """
)


@pytest.mark.slow
def test_everything_committed_survives_kill_9_mid_write(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert child.stdout is not None
    committed = 0
    deadline = time.monotonic() + 60
    while committed < 2000:  # dozens of commits, the child still writing when it is killed
        line = child.stdout.readline()
        assert line, f"writer exited early with {child.wait()}"
        committed = int(line)
        assert time.monotonic() < deadline, "writer too slow"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()

    spool = Spool(path, "s-1", 1 << 30)
    assert spool.last_seq >= committed
    events = spool.read_after(0, spool.last_seq + 1, 1 << 30)
    assert [e.seq for e in events] == list(range(1, spool.last_seq + 1))
    assert [e.window_focus.title for e in events] == [f"t{seq}" for seq in range(1, spool.last_seq + 1)]
    assert spool.append([focus("after restart")]) == [spool.last_seq]
    spool.close()
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)
