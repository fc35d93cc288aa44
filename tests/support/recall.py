"""A day at the desk as Recall sees it (English and Chinese screens), fed to a RecallRuntime as ingest
and the committed stream would, and the objects it leaves in a user's space."""

from __future__ import annotations

from datetime import UTC, datetime

from minio import Minio

from cloud_infer.recall.runtime import RecallRuntime
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.config import StoreSettings
from recall_store.event_log import EventLog
from recall_store.naming import user_bucket
from tests.support.screens import screen

SESSION = "desk-1"
NS_PER_S = 1_000_000_000
INVOICE = ["Invoice INV-2041 from Acme Corp", "Total due 1,280.00 USD", "Due date 2026-12-01"]
KAFKA = ["Kafka broker settings", "log retention hours 168", "segment bytes 1073741824"]
CHINESE = ["差旅报销单", "报销金额 356 元", "审批人 王经理"]


def focus(seq: int, t: int, window_id: int, app_id: str, title: str) -> pb.Event:
    return pb.Event(
        seq=seq,
        time_unix_nano=t,
        window_focus=pb.WindowFocus(window_id=window_id, app_id=app_id, wm_class=app_id, title=title),
    )


def frame(seq: int, t: int, window_id: int, image: bytes) -> pb.Event:
    return pb.Event(
        seq=seq,
        time_unix_nano=t,
        frame=pb.ScreenFrame(
            image=image, mime_type="image/webp", width=1024, height=640, dhash=seq, window_id=window_id
        ),
    )


def day(start_ns: int) -> list[pb.Event]:
    t = start_ns
    return [
        focus(1, t, 11, "chromium", "Invoice INV-2041 - Chromium"),
        frame(2, t + 1 * NS_PER_S, 11, screen(INVOICE)),
        frame(3, t + 2 * NS_PER_S, 11, screen(INVOICE)),  # unchanged: skipped
        focus(4, t + 60 * NS_PER_S, 12, "xterm", "kafka-configs"),
        frame(5, t + 61 * NS_PER_S, 12, screen(KAFKA)),
        focus(6, t + 120 * NS_PER_S, 13, "mousepad", "报销.txt - Mousepad"),
        frame(7, t + 121 * NS_PER_S, 13, screen(CHINESE)),
    ]


async def ingest(runtime: RecallRuntime, user: str, events: list[pb.Event]) -> None:
    """What ingest and the committed stream do: store the batch, then hand it to the pipeline."""
    await EventLog(runtime.service.store).append(user, SESSION, events)
    await runtime.pipeline.handle(user, SESSION, events)


def utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / NS_PER_S, UTC)


def space_objects(settings: StoreSettings, user: str) -> dict[str, bytes]:
    """Every object of the user's space read past the store interface (index files included)."""
    bucket = user_bucket(user)
    if settings.backend == "local":
        root = settings.local_root / bucket
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    client = Minio(
        settings.minio_endpoint,
        access_key=settings.minio_access_key,
        secret_key=settings.minio_secret_key.get_secret_value(),
        secure=False,
    )
    names = [o.object_name for o in client.list_objects(bucket, recursive=True) if o.object_name]
    return {name: client.get_object(bucket, name).read() for name in names}
