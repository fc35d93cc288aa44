"""Durable local spool of sensed events, on SQLite (WAL journal, ``synchronous=FULL``).

Sensed events wait here until the cloud acknowledges them, so a network outage, a cloud restart or
an agent crash loses nothing that was committed. Policy:

* **seq** is assigned at commit: strictly increasing from 1, and the last one is persisted in the
  ``meta`` table, so it never goes back, across restarts and after every row has been deleted.
* **Group commit**: one transaction (one fsync) per ``append()`` call; the agent calls it once per
  ``flush_interval_s`` with everything sensed since, never once per event.
* **Durability**: a committed event survives ``kill -9`` and power loss (``synchronous=FULL`` syncs
  the WAL at each commit). Events sensed but not yet committed (at most ``flush_interval_s``) are lost.
* **Acknowledgement**: ``mark_acked(seq)`` persists the acked seq and deletes every row <= seq in
  one transaction.
* **Bound**: the spool counts the serialized bytes of rows not yet acknowledged. Above the soft
  bound (``FRAME_BOUND_FRACTION`` of ``max_bytes``) new ScreenFrame events are skipped and counted
  in ``dropped_frames``: frames are the bulk of the bytes and the screen is grabbed again anyway.
  Other events are kept until the hard bound ``max_bytes``; only above it are they dropped, counted in
  ``dropped_events`` and logged as a warning. Committed rows are never evicted.
* **Resume**: ``reconcile(cloud_acked_seq)`` applies the Welcome of a new stream. When the cloud has
  acknowledged more than this spool ever assigned, the spool was lost or reset: pending rows are
  renumbered after the cloud's number, so the cloud does not discard them as duplicates.
* A spool file belongs to one session; opening it for another raises SpoolSessionMismatchError.
* **Commands** (``session_agent.executor``): the ``commands`` table keeps the id of every command the
  executor took up, so a command delivered again is never run twice. ``begin_command`` records the id
  and appends its CommandStarted event in one transaction, before the action; ``finish_command``
  appends the CommandResult and marks the id finished, again in one transaction. A command started
  but never finished (the agent died mid-action) is listed by ``unfinished_commands``. Command events
  are small and are never dropped by the bound. Ids are forgotten ``COMMAND_RETENTION_NS`` after they
  finished, once their deadline has passed too: a late copy is then refused as expired, not run.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.errors import SpoolError, SpoolSessionMismatchError

logger = logging.getLogger(__name__)

FRAME_BOUND_FRACTION = 0.75
COMMAND_RETENTION_NS = 7 * 24 * 3600 * 10**9
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, is_frame INTEGER NOT NULL,"
    " data BLOB NOT NULL)",
    # finished_ns IS NULL: started and not finished (the agent stopped mid-action).
    "CREATE TABLE IF NOT EXISTS commands (command_id TEXT PRIMARY KEY, received_ns INTEGER NOT NULL,"
    " started_ns INTEGER NOT NULL, deadline_ns INTEGER NOT NULL, finished_ns INTEGER)",
)


@dataclass(frozen=True)
class StartedCommand:
    """A command the executor took up and never finished."""

    command_id: str
    received_ns: int
    started_ns: int


class Spool:
    """Thread-safe, blocking spool. Use AsyncSpool from async code."""

    def __init__(self, path: Path, session_id: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.dropped_frames = 0
        self.dropped_events = 0
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"cannot open spool {path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            with self._transaction():
                for statement in _SCHEMA:
                    self._db.execute(statement)
                stored_session = self._get_meta("session_id")
                if stored_session is None:
                    self._set_meta("session_id", session_id)
                elif stored_session != session_id:
                    raise SpoolSessionMismatchError(
                        f"spool {path} belongs to session {stored_session!r}, not {session_id!r}; "
                        "use another spool_path or remove the file"
                    )
                self._last_seq = int(self._get_meta("last_seq") or 0)
                self._acked_seq = int(self._get_meta("acked_seq") or 0)
                self._depth, self._bytes = self._db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(length(data)), 0) FROM events"
                ).fetchone()
        except SpoolError:
            self._db.close()
            raise
        except sqlite3.Error as exc:
            self._db.close()
            raise SpoolError(f"spool {path} is unusable: {exc}") from exc

    @property
    def depth(self) -> int:
        """Events committed and not yet acknowledged."""
        return int(self._depth)

    @property
    def bytes(self) -> int:
        """Serialized bytes of the events counted by ``depth``."""
        return int(self._bytes)

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def acked_seq(self) -> int:
        return self._acked_seq

    def append(self, events: Sequence[pb.Event]) -> list[int]:
        """Commit ``events`` in one transaction; return the seqs assigned (dropped events get none)."""
        rows: list[tuple[int, int, bytes]] = []
        with self._lock:
            seq, total = self._last_seq, self._bytes
            for event in events:
                data = event.SerializeToString()
                is_frame = event.WhichOneof("kind") == "frame"
                if is_frame and total + len(data) > self.max_bytes * FRAME_BOUND_FRACTION:
                    self.dropped_frames += 1
                    continue
                if total + len(data) > self.max_bytes:
                    self.dropped_events += 1
                    logger.warning(
                        "spool full (%d of %d bytes): dropped a %s event (%d dropped so far)",
                        total,
                        self.max_bytes,
                        event.WhichOneof("kind"),
                        self.dropped_events,
                    )
                    continue
                seq += 1
                total += len(data)
                rows.append((seq, int(is_frame), data))
            if not rows:
                return []
            try:
                with self._transaction():
                    self._db.executemany("INSERT INTO events (seq, is_frame, data) VALUES (?, ?, ?)", rows)
                    self._set_meta("last_seq", str(seq))
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot append to spool {self.path}: {exc}") from exc
            self._last_seq, self._bytes, self._depth = seq, total, self._depth + len(rows)
        return [row[0] for row in rows]

    def knows_command(self, command_id: str) -> bool:
        """Whether ``command_id`` was taken up or answered before (then it must not run again)."""
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT 1 FROM commands WHERE command_id = ?", (command_id,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot read commands of spool {self.path}: {exc}") from exc
        return row is not None

    def begin_command(
        self, command_id: str, *, received_ns: int, deadline_ns: int, event: pb.Event
    ) -> int | None:
        """Record that ``command_id`` starts now and commit its CommandStarted ``event``, in one
        transaction; the event's seq, or None when the id is known already (nothing written)."""
        with self._lock:
            try:
                with self._transaction():
                    if self._db.execute(
                        "SELECT 1 FROM commands WHERE command_id = ?", (command_id,)
                    ).fetchone():
                        return None
                    self._db.execute(
                        "INSERT INTO commands (command_id, received_ns, started_ns, deadline_ns)"
                        " VALUES (?, ?, ?, ?)",
                        (command_id, received_ns, event.time_unix_nano, deadline_ns),
                    )
                    seq, size = self._insert_unbounded_locked(event)
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot record command in spool {self.path}: {exc}") from exc
            self._last_seq, self._bytes, self._depth = seq, self._bytes + size, self._depth + 1
        return seq

    def finish_command(self, command_id: str, *, deadline_ns: int, event: pb.Event) -> int | None:
        """Mark ``command_id`` finished and commit its CommandResult ``event``, in one transaction (also
        for a command never started); the event's seq, or None when it had finished already."""
        now = event.time_unix_nano or time.time_ns()
        with self._lock:
            try:
                with self._transaction():
                    row = self._db.execute(
                        "SELECT finished_ns FROM commands WHERE command_id = ?", (command_id,)
                    ).fetchone()
                    if row is not None and row[0] is not None:
                        return None
                    self._db.execute(
                        "INSERT INTO commands (command_id, received_ns, started_ns, deadline_ns, finished_ns)"
                        " VALUES (?, 0, 0, ?, ?) ON CONFLICT (command_id) DO UPDATE SET finished_ns = ?",
                        (command_id, deadline_ns, now, now),
                    )
                    self._db.execute(
                        "DELETE FROM commands WHERE finished_ns < ? AND deadline_ns > 0 AND deadline_ns < ?",
                        (now - COMMAND_RETENTION_NS, now),
                    )
                    seq, size = self._insert_unbounded_locked(event)
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot record command result in spool {self.path}: {exc}") from exc
            self._last_seq, self._bytes, self._depth = seq, self._bytes + size, self._depth + 1
        return seq

    def unfinished_commands(self) -> list[StartedCommand]:
        """Commands started and never finished, oldest first."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT command_id, received_ns, started_ns FROM commands WHERE finished_ns IS NULL"
                    " ORDER BY started_ns"
                ).fetchall()
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot read commands of spool {self.path}: {exc}") from exc
        return [StartedCommand(str(row[0]), int(row[1]), int(row[2])) for row in rows]

    def read_after(self, after_seq: int, max_events: int, max_bytes: int) -> list[pb.Event]:
        """Oldest pending events with seq > ``after_seq``: at most ``max_events``, and at most
        ``max_bytes`` serialized unless a single event is larger (it is then returned alone)."""
        events: list[pb.Event] = []
        size = 0
        with self._lock:
            try:
                cursor = self._db.execute(
                    "SELECT seq, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, max_events)
                )
                for seq, data in cursor:
                    if events and size + len(data) > max_bytes:
                        break
                    event = pb.Event.FromString(data)
                    event.seq = seq
                    events.append(event)
                    size += len(data)
                cursor.close()
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot read spool {self.path}: {exc}") from exc
        return events

    def mark_acked(self, seq: int) -> None:
        """Record that every event with seq <= ``seq`` is stored in the cloud, and delete them."""
        with self._lock:
            self._mark_acked_locked(min(seq, self._last_seq))

    def reconcile(self, cloud_acked_seq: int) -> None:
        """Apply the cloud's Welcome.acked_seq at the start of a stream (see module docstring)."""
        with self._lock:
            if cloud_acked_seq <= self._last_seq:
                if cloud_acked_seq < self._acked_seq:
                    logger.warning(
                        "cloud acknowledges seq %d but acknowledged %d before; events in between are gone",
                        cloud_acked_seq,
                        self._acked_seq,
                    )
                self._mark_acked_locked(cloud_acked_seq)
                return
            offset = cloud_acked_seq - self._acked_seq
            logger.warning(
                "cloud acknowledges seq %d beyond this spool's last seq %d (spool lost or reset): "
                "renumbering %d pending events after it",
                cloud_acked_seq,
                self._last_seq,
                self._depth,
            )
            try:
                with self._transaction():
                    self._db.execute("UPDATE events SET seq = seq + ?", (offset,))
                    self._set_meta("last_seq", str(self._last_seq + offset))
                    self._set_meta("acked_seq", str(cloud_acked_seq))
            except sqlite3.Error as exc:
                raise SpoolError(f"cannot renumber spool {self.path}: {exc}") from exc
            self._last_seq += offset
            self._acked_seq = cloud_acked_seq

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _insert_unbounded_locked(self, event: pb.Event) -> tuple[int, int]:
        """Insert one event with the next seq in the caller's transaction, whatever the bound; its seq and
        size, for the caller to count once the transaction committed."""
        seq = self._last_seq + 1
        data = event.SerializeToString()
        self._db.execute("INSERT INTO events (seq, is_frame, data) VALUES (?, 0, ?)", (seq, data))
        self._set_meta("last_seq", str(seq))
        return seq, len(data)

    def _mark_acked_locked(self, seq: int) -> None:
        if seq <= 0:
            return
        try:
            with self._transaction():
                count, size = self._db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(length(data)), 0) FROM events WHERE seq <= ?", (seq,)
                ).fetchone()
                self._db.execute("DELETE FROM events WHERE seq <= ?", (seq,))
                if seq > self._acked_seq:
                    self._set_meta("acked_seq", str(seq))
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot mark seq {seq} acked in spool {self.path}: {exc}") from exc
        self._depth -= count
        self._bytes -= size
        self._acked_seq = max(self._acked_seq, seq)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


class AsyncSpool:
    """The Spool for async code: every blocking call runs on one dedicated thread, in call order."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")

    @classmethod
    async def open(cls, path: Path, session_id: str, max_bytes: int) -> AsyncSpool:
        spool = await asyncio.to_thread(Spool, path, session_id, max_bytes)
        return cls(spool)

    @property
    def depth(self) -> int:
        return self.spool.depth

    async def append(self, events: Sequence[pb.Event]) -> list[int]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.spool.append, events)

    async def read_after(self, after_seq: int, max_events: int, max_bytes: int) -> list[pb.Event]:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self.spool.read_after, after_seq, max_events, max_bytes
        )

    async def mark_acked(self, seq: int) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self.spool.mark_acked, seq)

    async def reconcile(self, cloud_acked_seq: int) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.spool.reconcile, cloud_acked_seq)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self.spool.close)
        self._executor.shutdown(wait=True)
