"""The agent's executor of cloud commands (``Command`` in ingest.proto): see ``service`` for how a command
is taken in, run at most once and recorded, ``workflow`` and ``remediation`` for the actions and their
safety rules, and docs/agent.md ("Commands").

``open_executor`` builds one with every action handler; the caller starts it (``start``, which also
answers commands a previous run left unfinished) and stops it (``stop``).
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry import metrics

from protos.shadowdesk.v1 import ingest_pb2 as pb
from session_agent.config import AgentSettings
from session_agent.executor.protocol import ActionContext, Handler, Outcome, action_of
from session_agent.executor.remediation import Remediation
from session_agent.executor.service import Executor
from session_agent.executor.workflow import WorkflowActions
from session_agent.privacy import PrivacyRules
from session_agent.spool import Spool

__all__ = ["ActionContext", "Executor", "Handler", "Outcome", "action_of", "open_executor"]


def open_executor(
    settings: AgentSettings,
    spool: Spool,
    privacy: PrivacyRules,
    *,
    notify: Callable[[], None] = lambda: None,
    meter: metrics.Meter | None = None,
    session_bus: str | None = None,
) -> Executor:
    """An executor with the workflow, remediation and recording handlers; ``notify`` (thread-safe) wakes
    the sender. Recorded actions go straight into the spool, one commit each (they come at human pace)."""
    # Imported here: the recorder builds on the executor's modules.
    from session_agent.recorder import Recorder

    def emit(event: pb.Event) -> None:
        spool.append([event])
        notify()

    workflow = WorkflowActions(settings, spool, privacy, session_bus=session_bus)
    recorder = Recorder(settings, privacy, emit, session_bus=session_bus)
    handlers = {**workflow.handlers(), **Remediation(settings, spool).handlers(), **recorder.handlers()}
    return Executor(
        settings, spool, handlers, notify=notify, meter=meter, on_stop=[recorder.close, workflow.close]
    )
