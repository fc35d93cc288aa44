"""The committed event stream, fanned out: each feature consumes what ingest stored at its own pace.

``Fanout.register(name, handler)`` subscribes a consumer; ingest ``publish``-es each committed batch
without waiting for any. See ``cloud_infer.stream.fanout`` for the delivery guarantees.
"""

from cloud_infer.stream.config import StreamSettings
from cloud_infer.stream.cursors import Cursors, StoreCursors
from cloud_infer.stream.fanout import Fanout, Handler
from cloud_infer.stream.protocol import ConsumerLag, StreamHealth

__all__ = ["ConsumerLag", "Cursors", "Fanout", "Handler", "StoreCursors", "StreamHealth", "StreamSettings"]
