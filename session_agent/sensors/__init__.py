"""Sensors: each runs in its own thread and emits ``pb.Event`` payloads (seq is assigned by the spool)."""

from __future__ import annotations

from session_agent.sensors.base import Emit, FocusState, Sensor, new_event

__all__ = ["Emit", "FocusState", "Sensor", "new_event"]
