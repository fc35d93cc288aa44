"""Giving freed heap memory back to the OS after large, rare allocations (glibc only).

A 1080p grab allocates ~25 MB of buffers for a moment. glibc keeps freed heap memory for reuse, so
without a trim every grab would leave the agent's RSS that much higher, far over its 60 MB budget.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)


def _load_trim() -> ctypes._NamedFuncPointer | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        logger.debug("no malloc_trim in %s: freed memory stays with the allocator", name)
        return None


_malloc_trim = _load_trim()


def release_free_memory() -> None:
    """Return free heap pages of every malloc arena to the OS (a no-op off glibc)."""
    if _malloc_trim is not None:
        _malloc_trim(0)
