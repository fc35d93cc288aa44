"""A scripted desktop for the sidebar's Macros tests: a real gRPC agent stream on its own event loop.

It answers what the cloud sends as the session agent would: ``RecordingControl`` START (then reports
a recorded 报销 demonstration, with a screen frame) and STOP (the STOPPED marker), and ``WorkflowStep``
commands against a small model of a claim form (fields, a Submit button that files a claim and shows
its number, elements that can be made missing, ``TakeFrame`` answered with a real PNG frame). The
Playwright test is synchronous; it drives this through ``DeskThread``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from PIL import Image, ImageDraw

from harness.processes import TOKEN_SECRET, ServerProcess
from protos.shadowdesk.v1 import ingest_pb2 as pb
from tests.support.cloud import now_ns
from tests.support.commands_agent import TestAgent
from tests.support.recordings import expense_claim

R = pb.CommandResult
T = TypeVar("T")


def frame_png(text: str) -> bytes:
    image = Image.new("RGB", (320, 200), "white")
    ImageDraw.Draw(image).text((20, 80), text, fill=(20, 20, 20))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass
class Desk:
    agent: TestAgent
    fields: dict[str, str] = field(default_factory=dict)
    submissions: int = 0
    missing: set[str] = field(default_factory=set)  # elements that are never found
    recorded: int = 0  # recorded actions reported
    frames: int = 0  # frames sent for TakeFrame
    results: dict[str, pb.CommandResult] = field(default_factory=dict)  # by command id
    answered: set[str] = field(default_factory=set)  # results the cloud acknowledged
    _handled: int = 0
    _script: Any = None

    def page_text(self) -> str:
        return f"Claim filed: CLM-{1000 + self.submissions}" if self.submissions else "New claim"

    async def serve(self) -> None:
        """Answer commands until cancelled; a stream that ends (its 15 s deadline) is opened again, and
        the cloud sends again what has no result yet, as it does for the real agent."""
        while True:
            try:
                await self._serve_stream()
            except grpc.aio.AioRpcError:
                await self.agent.close()
                await self.agent.connect()

    async def _serve_stream(self) -> None:
        while True:
            if self._handled == len(self.agent.commands):
                await self.agent.next_command(timeout_s=3600)
                continue
            command = self.agent.commands[self._handled]
            self._handled += 1
            if command.HasField("cancel") or command.command_id in self.answered:
                continue
            # At most once, as the executor keeps it: a command sent again gets the same result.
            result = self.results.get(command.command_id)
            if result is None:
                result = await self._execute(command)
                self.results[command.command_id] = result
            await self.agent.send([self.agent.event(command_result=result)])
            self.answered.add(command.command_id)

    async def _execute(self, command: pb.Command) -> pb.CommandResult:
        frame_seq = 0
        status: R.Status.ValueType = R.STATUS_SUCCEEDED
        observed: dict[str, str] = {}
        error = ""
        if command.HasField("recording"):
            await self._recording(command.recording)
        elif command.workflow_step.HasField("take_frame"):
            frame = self._frame_event(self.page_text())
            await self.agent.send([frame])
            self.frames += 1
            frame_seq = frame.seq
        else:
            status, observed, error = self._answer(command.workflow_step)
        t = now_ns()
        return R(
            command_id=command.command_id,
            status=status,
            received_unix_nano=t - 2_000_000,
            started_unix_nano=t - 1_000_000,
            finished_unix_nano=t,
            observed=observed,
            error=error,
            frame_seq=frame_seq,
        )

    async def _recording(self, control: pb.RecordingControl) -> None:
        if control.action == pb.RecordingControl.ACTION_START:
            # The person does the task: what the recorder reports, with a frame of the screen.
            self._script = expense_claim(control.recording_id)
            events = [self._frame_event("Expense Portal - New claim")]
            for rec in self._script.actions[:-1]:  # STOPPED comes with the stop command
                events.append(self.agent.event(recorded=rec.action))
                for seen in self._script.texts:
                    if seen.time_ns == rec.time_ns:
                        text = pb.TextSnapshot(window_id=22, app_id=seen.app_id, text=seen.text)
                        events.append(self.agent.event(text=text))
            for i in range(0, len(events), 20):
                await self.agent.send(events[i : i + 20])
            self.recorded = len(self._script.actions) - 1
        else:
            await self.agent.send([self.agent.event(recorded=self._script.actions[-1].action)])

    def _frame_event(self, text: str) -> pb.Event:
        return self.agent.event(
            frame=pb.ScreenFrame(
                image=frame_png(text), mime_type="image/png", width=320, height=200, dhash=self.agent.seq + 1
            )
        )

    def _answer(self, step: pb.WorkflowStep) -> tuple[R.Status.ValueType, dict[str, str], str]:
        ok = R.STATUS_SUCCEEDED
        action = step.WhichOneof("action")
        if action == "wait_for":
            if step.wait_for.HasField("element_exists"):
                name = step.wait_for.element_exists.name
                if name in self.missing:
                    return R.STATUS_FAILED, {"met": "false"}, f"no element {name!r} appeared"
                return ok, {"met": "true", "found_by": "role+name", "name": name}, ""
            if step.wait_for.HasField("text_in_window"):
                find = step.wait_for.text_in_window
                text = self.page_text()
                if (find.pattern and "CLM-" in text) or (find.text and find.text in text):
                    return ok, {"met": "true", "found": "true", "text": text}, ""
                return R.STATUS_FAILED, {"met": "false"}, "text_in_window not met"
            return ok, {"met": "true"}, ""
        if action == "read_element":
            return ok, {"value": self.fields.get(step.read_element.element.name, "")}, ""
        if action == "type_text":
            self.fields[step.type_text.element.name] = step.type_text.text
            return ok, {"method": "keyboard"}, ""
        if action == "click_element":
            if step.click_element.element.name == "Submit":
                self.submissions += 1
            return ok, {"method": "action:press"}, ""
        return ok, {}, ""


class DeskThread:
    """A ``Desk`` connected to ``server`` as ``user``'s ``session``, served on a loop in its own thread."""

    def __init__(self, server: ServerProcess, user: str, session: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="macro-desk", daemon=True)
        self._thread.start()
        self.desk = Desk(TestAgent(server.grpc_address, user, session, token_secret=TOKEN_SECRET))
        self._serving: concurrent.futures.Future[None] | None = None

    def call(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def start(self) -> None:
        self.call(self.desk.agent.connect())
        self._serving = asyncio.run_coroutine_threadsafe(self.desk.serve(), self.loop)

    def edit(self, change: Any) -> None:
        """Run ``change(desk)`` on the desk's loop (its state is the loop's)."""

        async def apply() -> None:
            change(self.desk)

        self.call(apply())

    def failure(self) -> BaseException | None:
        """What stopped the desk serving, if something did."""
        if self._serving is not None and self._serving.done() and not self._serving.cancelled():
            return self._serving.exception()
        return None

    def close(self) -> None:
        if self._serving is not None:
            self._serving.cancel()
        try:
            self.call(self.desk.agent.close(), timeout_s=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
