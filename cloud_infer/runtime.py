"""The lifecycle every capability's runtime has, so the server opens, starts and closes them all alike.

``open_X(...) -> XRuntime`` builds a capability's parts at once (models load and connections open on
first use), ``start()`` starts its background work inside the running event loop, and ``close()`` stops
that work and releases what it holds; the server closes runtimes in the reverse order it opened them,
except the stream, which closes first so that its consumers' calls in progress end before their parts do.
Today: ``open_gateway`` → ``LLMGateway``, ``open_stream`` → ``Fanout`` (the committed stream),
``open_recall`` → ``RecallRuntime``, ``open_workflows`` → ``WorkflowsRuntime`` and ``open_diagnostics`` →
``DiagnosticsRuntime`` (async: it loads the stored incidents before any batch is judged). A runtime
whose part reads the committed stream registers it with ``consume(stream)`` before the stream starts. A
capability with nothing to run or release (privacy, timeline, assist, the command downlink) is a plain
service that ``Services.create`` builds.
"""

from __future__ import annotations

from typing import Protocol


class Runtime(Protocol):
    def start(self) -> None:
        """Start background work; call inside the running event loop."""

    async def close(self) -> None:
        """Stop background work and release what the runtime holds."""
