"""The runner's hands: one desktop action as one command through the downlink, and its outcome.

``RunDesktop.run`` issues a ``WorkflowStep`` to the run's session as the run's owner (so the commands
policy applies as it would to the user), with an idempotency key the caller derives from the run, the
step, the loop row and the try, and waits for the agent's result. ``ocr_text`` reads a frame the agent
took (``TakeFrame``) back from the user's space and OCRs it, for checks on apps without accessibility.
Nothing here reaches a language model.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field

import numpy as np

from cloud_infer.commands.records import CommandRecord, CommandStatus, Issuer
from cloud_infer.commands.service import CommandService, SessionRef
from cloud_infer.errors import (
    BackendUnavailableError,
    CloudInferError,
    InvalidMessageError,
    RateLimitedError,
)
from cloud_infer.frames import DEFAULT_MAX_FRAME_PIXELS, decode_frame
from cloud_infer.recall.ocr import OcrEngine
from cloud_infer.workflows.program import Bounds, ElementTarget, WindowTarget
from cloud_infer.workflows.runner_protocol import CommandTrace, FrameRef
from protos.shadowdesk.v1 import ingest_pb2 as pb
from recall_store.errors import StoreError
from recall_store.event_log import EventLog
from recall_store.store import ObjectStore

_TRANSIENT_ISSUE_ERRORS = (RateLimitedError, BackendUnavailableError)


class CommandOutcomeError(Exception):
    """A command that did not succeed; ``transient`` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool, interrupted: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.interrupted = interrupted


@dataclass(slots=True)
class Outcome:
    record: CommandRecord | None
    ms: float
    observed: dict[str, str] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.record is not None and self.record.status is CommandStatus.SUCCEEDED

    @property
    def status(self) -> str:
        return self.record.status.value if self.record is not None else "not_issued"

    @property
    def error(self) -> str:
        return self.record.error if self.record is not None else ""


def idempotency_key(*parts: object) -> str:
    """A key (printable ASCII, 64 characters) that is the same for the same parts, and only for them."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()
    return f"wf-{digest[:61]}"


def window_ref(target: WindowTarget) -> pb.WindowRef:
    return pb.WindowRef(app_id=target.app_id, title_contains=target.title_contains)


def element_ref(target: ElementTarget) -> pb.ElementRef:
    ref = pb.ElementRef(
        window=window_ref(target.window),
        role=target.role,
        name=target.name,
        path=target.path,
        label=target.label,
        id_attribute=target.id_attribute,
    )
    if isinstance(target.bounds, Bounds):
        ref.bounds.CopyFrom(
            pb.Rect(
                x=target.bounds.x, y=target.bounds.y, width=target.bounds.width, height=target.bounds.height
            )
        )
    return ref


def found_by(observed: dict[str, str]) -> str:
    """How the agent found the target, as its result says (``found_by``, else what it reported)."""
    if observed.get("found_by"):
        return observed["found_by"]
    if observed.get("path"):
        return f"path:{observed['path']}"
    return observed.get("method", "")


class RunDesktop:
    """The desktop session of one run, reached only through commands."""

    def __init__(
        self,
        commands: CommandService,
        session: SessionRef,
        store: ObjectStore,
        ocr: OcrEngine,
        margin_s: float,
    ) -> None:
        self._commands = commands
        self._session = session
        self._issuer = Issuer.user(session.user_id)
        self._store = store
        self._log = EventLog(store)
        self._ocr = ocr
        self._margin_s = margin_s
        self.issued = 0
        self.pending: str | None = None  # the command being waited for (cancelled with the run)

    async def run(
        self,
        action: pb.WorkflowStep,
        *,
        key: str,
        timeout_s: float,
        purpose: str,
        trace: list[CommandTrace],
        secret: str | None = None,
    ) -> Outcome:
        """Issue ``action`` and wait for its result. Raise CommandOutcomeError when it did not succeed."""
        started = time.perf_counter()
        deadline_s = timeout_s + self._margin_s
        try:
            record = await self._commands.issue(
                self._session,
                action,
                issuer=self._issuer,
                deadline_s=deadline_s,
                idempotency_key=key,
                secret=secret,
            )
        except _TRANSIENT_ISSUE_ERRORS as exc:
            raise CommandOutcomeError(f"the command could not be issued: {exc}", transient=True) from exc
        except CloudInferError as exc:
            raise CommandOutcomeError(f"the command was refused: {exc}", transient=False) from exc
        self.issued += 1
        self.pending = record.command_id
        try:
            record = await self._commands.wait(
                self._session, record.command_id, deadline_s + self._margin_s, issuer=self._issuer
            )
        except TimeoutError:
            pass  # still pending: recorded below as the agent not answering
        except _TRANSIENT_ISSUE_ERRORS as exc:
            raise CommandOutcomeError(
                f"the command's result could not be read: {exc}", transient=True
            ) from exc
        finally:
            self.pending = None
        outcome = Outcome(record, (time.perf_counter() - started) * 1000, dict(record.observed))
        trace.append(
            CommandTrace(
                purpose=purpose,
                command_id=record.command_id,
                action=record.action,
                status=record.status.value,
                ms=round(outcome.ms, 1),
                observed=outcome.observed,
                error=record.error,
            )
        )
        status = record.status
        if status is CommandStatus.SUCCEEDED:
            return outcome
        if status.pending:
            raise CommandOutcomeError(
                f"no result from the agent {deadline_s + self._margin_s:g} s after issuing", transient=True
            )
        if status is CommandStatus.INTERRUPTED:
            raise CommandOutcomeError(
                f"the agent was interrupted while acting: {record.error}", transient=False, interrupted=True
            )
        if status is CommandStatus.REFUSED:
            raise CommandOutcomeError(f"the agent refused: {record.error}", transient=False)
        if status is CommandStatus.CANCELLED:
            raise CommandOutcomeError("the command was cancelled", transient=False)
        # failed (target not found yet, the app did not answer) or expired (the agent was away)
        raise CommandOutcomeError(record.error or f"the command {status.value}", transient=True)

    async def frame(
        self, *, key: str, purpose: str, trace: list[CommandTrace], window: WindowTarget | None = None
    ) -> FrameRef | None:
        """A frame of the screen now, or of ``window``'s rectangle only (None when the agent takes none,
        e.g. a private window has focus)."""
        take = pb.TakeFrame(window=window_ref(window)) if window is not None else pb.TakeFrame()
        try:
            outcome = await self.run(
                pb.WorkflowStep(take_frame=take),
                key=key,
                timeout_s=5.0,
                purpose=purpose,
                trace=trace,
            )
        except CommandOutcomeError:
            return None
        seq = outcome.record.frame_seq if outcome.record is not None else 0
        if not seq:
            return None
        return FrameRef(seq=seq, key=await self._frame_key(seq))

    async def ocr_text(self, frame: FrameRef) -> str:
        """The text OCR reads in the frame; empty when its image is not (yet) stored."""
        if not frame.key:
            frame.key = await self._frame_key(frame.seq)
        if not frame.key:
            return ""
        try:
            data = await self._log.frame(self._session.user_id, frame.key)
        except StoreError:
            return ""
        try:
            image = decode_frame(data, max_pixels=DEFAULT_MAX_FRAME_PIXELS)
        except InvalidMessageError:
            return ""
        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        boxes = await asyncio.to_thread(self._ocr.read, bgr)
        return "\n".join(box.text for box in boxes)

    async def cancel_pending(self) -> None:
        command_id = self.pending
        if command_id is None:
            return
        try:
            await self._commands.cancel(self._session, command_id, issuer=self._issuer)
        except CloudInferError:
            return

    async def _frame_key(self, seq: int) -> str:
        """The stored key of frame ``seq`` (its extension follows the image type the agent sent)."""
        prefix = f"frames/{self._session.session_id}/{seq:012d}."
        try:
            keys = await self._store.list_keys(self._session.user_id, prefix)
        except StoreError:
            return ""
        return keys[0] if keys else ""
