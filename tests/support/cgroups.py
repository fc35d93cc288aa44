"""A memory cgroup the tests may create children in: an OOM kill of one process, on purpose, without
harming the machine."""

from __future__ import annotations

import os
from pathlib import Path


def memory_cgroup() -> Path | None:
    """This process's memory cgroup (v1) if it is writable, else None."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            found = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            return found if os.access(found, os.W_OK) else None
    return None
