"""Opens the committed stream: the fan-out of what ingest stores to every consumer (``Fanout``).

Consumers register on it before ``start()``; ``close()`` lets their calls in progress finish and saves
every cursor, so the server closes it before the parts those calls use (Recall's pipeline and index).
"""

from __future__ import annotations

from cloud_infer.stream.config import StreamSettings
from cloud_infer.stream.fanout import Fanout
from recall_store.directory import UserDirectory
from recall_store.event_log import EventLog
from recall_store.store import ObjectStore


def open_stream(settings: StreamSettings, store: ObjectStore, directory: UserDirectory) -> Fanout:
    """The fan-out over ``store``'s event log, sweeping every user of ``directory``."""
    return Fanout(settings, EventLog(store), directory)
