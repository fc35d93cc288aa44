"""What the fan-out reports about its consumers: counts only, never a user or session id.

``GET /health/stream`` answers with ``StreamHealth`` without a token (like ``/health``), so it carries
aggregates per consumer and nothing that names anyone.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ConsumerLag(BaseModel):
    consumer: str
    sessions: int = Field(description="sessions this consumer holds in memory now")
    sessions_behind: int = Field(description="of those, sessions with committed events not yet handled")
    events_behind: int = Field(description="committed seqs not yet handled, summed over sessions")
    seconds_behind: float = Field(
        description="age of the oldest committed batch not yet handled, over all sessions (0: caught up)"
    )
    queued_events: int = Field(description="committed events held in memory for this consumer")
    reading_log: int = Field(description="sessions catching up from the event log instead of memory")
    failing_sessions: int = Field(description="sessions whose last call failed and is being retried")
    delivered_events: int = Field(description="events handed to this consumer since the server started")


class StreamHealth(BaseModel):
    consumers: list[ConsumerLag]
    last_sweep_s: float | None = Field(
        description="seconds since the last sweep of every user's sessions finished (None: none yet)"
    )
