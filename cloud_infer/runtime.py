"""The lifecycle every capability's runtime has, so the server opens, starts and closes them all alike.

``open_X(...) -> XRuntime`` builds a capability's parts at once (models load and connections open on
first use), ``start()`` starts its background work inside the running event loop, and ``close()`` stops
that work and releases what it holds; the server closes runtimes in the reverse order it opened them.
Today: ``open_recall`` → ``RecallRuntime`` and ``open_gateway`` → ``LLMGateway``. A capability with nothing
to run or release (privacy, timeline, assist) is a plain service that ``Services.create`` builds.
"""

from __future__ import annotations

from typing import Protocol


class Runtime(Protocol):
    def start(self) -> None:
        """Start background work; call inside the running event loop."""

    async def close(self) -> None:
        """Stop background work and release what the runtime holds."""
